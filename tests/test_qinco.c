/* tests/test_qinco.c — the QINCo-style quantizer: hand-written gradients
 * against double-precision finite differences of an independent reference
 * forward, f = 0 reproducing its RQ exactly, training lowering the held-out
 * MSE below the RQ's within seconds, encode/decode consistency (threads,
 * batching, multi-rate), save→load bit-identical, corrupt blobs and bad
 * parameters rejected with clear messages. Small synthetic data, fixed seeds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "qinco_impl.h"
#include "qinx/derp.h"
#include "qinx/error.h"
#include "qinx/ivf.h"
#include "qinx/qinco.h"
#include "qinx/rq.h"

/* Points near a curved 3-D manifold in R^d: x_j = 3 sin(w_j·z + b_j) + noise.
 * The residual distribution after the first steps depends strongly on where
 * on the manifold a point lies, which is what implicit codebooks exploit. */
static float *manifold(size_t n, size_t d, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, 4242); /* the manifold itself is fixed */
    double w[64][3], b[64];
    for (size_t j = 0; j < d; j++) {
        for (int t = 0; t < 3; t++) w[j][t] = 1.5 * tu_rng_normal(&r);
        b[j] = 6.28 * tu_rng_uniform(&r);
    }
    tu_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < n; i++) {
        double z[3];
        for (int t = 0; t < 3; t++) z[t] = 2 * tu_rng_uniform(&r) - 1;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (float)(3 * sin(w[j][0] * z[0] + w[j][1] * z[1] + w[j][2] * z[2] + b[j]) +
                                   0.05 * tu_rng_normal(&r));
    }
    return x;
}

/* ---- gradient check -------------------------------------------------- */

/* Reference loss in double, straight from the model's definition:
 * Σ_m w_m ||x − x̂_m||² / nb with x̂_m = x̂_{m-1} + rho_m (c + f_m([c ; x̂_{m-1}])),
 * w_m = sw for m < M−1 and 1 for the last step; x̂ is recomputed from p, so
 * finite differences see every path through the recursion. */
static double ref_loss(const qx__qinco *q, const double *p, const double *xs, const double *x0,
                       const uint8_t *codes, size_t nb, double sw) {
    size_t d = q->d, M = q->M, h = q->h, L = q->L;
    double total = 0, z[64], u[128], hid[64], c[64], xh[64];
    for (size_t i = 0; i < nb; i++) {
        for (size_t j = 0; j < d; j++) xh[j] = x0 ? x0[i * d + j] : 0; /* the context */
        for (size_t m = 0; m < M; m++) {
            const double *cb = p + qx__qinco_off_cb(q, m) + (size_t)codes[i * M + m] * d;
            for (size_t j = 0; j < d; j++) c[j] = cb[j];
            if (m > 0) {
                const double *net = p + qx__qinco_off_net(q, m);
                const double *Wc = net, *bc = net + 2 * d * d, *blk = bc + d;
                for (size_t j = 0; j < d; j++) u[j] = cb[j], u[d + j] = xh[j];
                for (size_t o = 0; o < d; o++) {
                    double s = bc[o];
                    for (size_t j = 0; j < 2 * d; j++) s += Wc[o * 2 * d + j] * u[j];
                    z[o] = s;
                }
                for (size_t l = 0; l < L; l++) {
                    const double *W1 = blk + l * 2 * h * d, *W2 = W1 + h * d;
                    for (size_t o = 0; o < h; o++) {
                        double s = 0;
                        for (size_t j = 0; j < d; j++) s += W1[o * d + j] * z[j];
                        hid[o] = s > 0 ? s : 0;
                    }
                    for (size_t o = 0; o < d; o++) {
                        double s = 0;
                        for (size_t j = 0; j < h; j++) s += W2[o * h + j] * hid[j];
                        z[o] += s;
                    }
                }
                for (size_t j = 0; j < d; j++) c[j] += z[j];
            }
            double e2 = 0;
            for (size_t j = 0; j < d; j++) {
                xh[j] += q->rho[m] * c[j];
                double e = xs[i * d + j] - xh[j];
                e2 += e * e;
            }
            total += (m + 1 == M ? 1.0 : sw) * e2;
        }
    }
    return total / (double)nb;
}

/* A network of M steps, L blocks of width h over d dimensions, with seeded
 * normal parameters (sd `sd`) and per-step factors 1, 1/2, 1/4, ... as
 * set_base would choose them for shrinking residuals; *r is left seeded for
 * the caller's data. */
static qx__qinco *random_net(qx_qinco_opts *o, size_t d, size_t M, size_t L, size_t h,
                             uint64_t seed, double sd, tu_rng *r) {
    qx_qinco_opts_init(o);
    o->M = M;
    o->L = L;
    o->h = h;
    qx__qinco *q;
    assert_int_equal(qx__qinco_alloc(&q, d, o), 0);
    tu_rng_seed(r, seed);
    for (size_t i = 0; i < q->nparams; i++) q->params[i] = (float)(sd * tu_rng_normal(r));
    for (size_t m = 0; m < M; m++) q->rho[m] = ldexpf(1.0f, -(int)m);
    return q;
}

static void grad_check(float sw, int with_ctx) {
    qx_qinco_opts o;
    size_t d = 6, nb = 7;
    tu_rng r;
    qx__qinco *q = random_net(&o, d, 3, 2, 5, 99, 0.4, &r);
    float *xs = malloc(sizeof(float) * nb * d);
    uint8_t *codes = malloc(nb * o.M);
    for (size_t i = 0; i < nb * d; i++) xs[i] = (float)tu_rng_normal(&r);
    /* Contexts (x̂_0, e.g. an IVF centroid), with the target moved by them */
    float *x0 = with_ctx ? malloc(sizeof(float) * nb * d) : NULL;
    double *x0d = with_ctx ? malloc(sizeof(double) * nb * d) : NULL;
    for (size_t i = 0; with_ctx && i < nb * d; i++) {
        x0[i] = (float)(2 * tu_rng_normal(&r));
        x0d[i] = x0[i];
        xs[i] += x0[i];
    }
    /* A few codewords only, some shared by several rows (scatter-add). */
    for (size_t i = 0; i < nb * o.M; i++) codes[i] = (uint8_t)(tu_rng_next(&r) % 4);

    qx__qinco_work w;
    assert_int_equal(qx__qinco_work_alloc(q, nb, &w), 0);
    float *grad = malloc(sizeof(float) * q->nparams);
    double loss;
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, x0, codes, nb, sw, &w, grad, &loss, NULL, NULL), 0);

    double *p = malloc(sizeof(double) * q->nparams), *xd = malloc(sizeof(double) * nb * d);
    for (size_t i = 0; i < q->nparams; i++) p[i] = q->params[i];
    for (size_t i = 0; i < nb * d; i++) xd[i] = xs[i];
    double l0 = ref_loss(q, p, xd, x0d, codes, nb, sw);
    assert_true(fabs(l0 - loss) <= 1e-4 * (1 + l0));

    double gmax = 0;
    for (size_t i = 0; i < q->nparams; i++) gmax = fmax(gmax, fabs(grad[i]));
    assert_true(gmax > 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < q->nparams; i++) {
        double keep = p[i], eps = 1e-6;
        p[i] = keep + eps;
        double lp = ref_loss(q, p, xd, x0d, codes, nb, sw);
        p[i] = keep - eps;
        double lm = ref_loss(q, p, xd, x0d, codes, nb, sw);
        p[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        if (fabs(fd - grad[i]) > 1e-3 * fabs(fd) + 1e-4 * gmax) {
            fprintf(stderr, "param %zu: analytic %.8g, finite difference %.8g\n", i, grad[i], fd);
            fail();
        }
        nonzero += fd != 0;
    }
    /* Every kind of parameter took part: codebook rows, Wc, bc, W1, W2. */
    assert_true(nonzero > 3 * q->net_size / 2);
    qx__qinco_work_free(&w);
    free(grad);
    free(p);
    free(xd);
    free(xs);
    free(x0);
    free(x0d);
    free(codes);
    qx_quantizer_free(&q->base);
}

/* Final-step loss only, a light weight on the intermediate steps, and the
 * paper's plain sum. */
static void test_gradient_matches_finite_differences(void **state) {
    (void)state;
    grad_check(0.0f, 0);
    grad_check(0.3f, 0);
    grad_check(1.0f, 0);
    grad_check(0.3f, 1); /* with contexts: the networks see x̂ = x̂_0 + … */
}

/* The batch cut into shards, one per thread, summed in shard order: the
 * same loss, per-step errors, residuals and gradient as the single pass (to
 * rounding: sgemm sums a row in an order that depends on the call's shape),
 * and the same bits from one call to the next. */
static void test_sharded_gradient_matches_single_pass(void **state) {
    (void)state;
    qx_qinco_opts o;
    size_t d = 12, nb = 37;
    tu_rng r;
    qx__qinco *q = random_net(&o, d, 4, 2, 9, 7, 0.3, &r);
    float *xs = malloc(sizeof(float) * nb * d);
    uint8_t *codes = malloc(nb * o.M);
    for (size_t i = 0; i < nb * d; i++) xs[i] = (float)tu_rng_normal(&r);
    for (size_t i = 0; i < nb * o.M; i++) codes[i] = (uint8_t)(tu_rng_next(&r) % 6);
    qx__qinco_work w;
    assert_int_equal(qx__qinco_work_alloc(q, nb, &w), 0);
    size_t np = q->nparams;
    float *g1 = malloc(sizeof(float) * np), *g2 = malloc(sizeof(float) * np);
    float *g3 = malloc(sizeof(float) * np);
    float *r1 = malloc(sizeof(float) * nb * o.M * d), *r2 = malloc(sizeof(float) * nb * o.M * d);
    double l1, l2, l3, s1[4], s2[4];
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, NULL, codes, nb, 0.3f, &w, g1, &l1, s1, r1), 0);
    double gmax = 0;
    for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(g1[i]));
    assert_true(gmax > 0);
    for (int T = 2; T <= 5; T += 3) {
        qx__qinco_par par;
        assert_int_equal(qx__qinco_par_alloc(q, nb, T, &par), 0);
        assert_int_equal(par.T, T);
        assert_int_equal(qx__qinco_loss_grad_par(q, q->params, xs, NULL, codes, nb, 0.3f, &par, g2, &l2,
                                                 s2, r2), 0);
        assert_true(fabs(l2 - l1) <= 1e-5 * l1);
        for (size_t m = 0; m < 4; m++) assert_true(fabs(s2[m] - s1[m]) <= 1e-5 * s1[m]);
        for (size_t i = 0; i < nb * o.M * d; i++) assert_true(fabs(r2[i] - r1[i]) <= 1e-5);
        for (size_t i = 0; i < np; i++)
            if (fabs(g2[i] - g1[i]) > 1e-5 * gmax) {
                fprintf(stderr, "T %d param %zu: sharded %.8g, single %.8g\n", T, i, g2[i], g1[i]);
                fail();
            }
        assert_int_equal(qx__qinco_loss_grad_par(q, q->params, xs, NULL, codes, nb, 0.3f, &par, g3, &l3,
                                                 NULL, NULL), 0);
        assert_memory_equal(g2, g3, sizeof(float) * np);
        assert_true(l2 == l3);
        /* a batch larger than the shards were sized for is refused */
        assert_int_equal(qx__qinco_loss_grad_par(q, q->params, xs, NULL, codes, nb + (size_t)T, 0.3f,
                                                 &par, g3, &l3, NULL, NULL), QX_EINTERNAL);
        qx__qinco_par_free(&par);
    }
    qx__qinco_work_free(&w);
    free(g1), free(g2), free(g3), free(r1), free(r2), free(xs), free(codes);
    qx_quantizer_free(&q->base);
}

/* The encoder's pre-selection against a reference (a stable sort of the
 * whole row): scores with many ties, every A the encoder can ask for. */
static void test_preselection_matches_stable_sort(void **state) {
    (void)state;
    enum { N = 256 };
    float v[N], cs[N], sv[N];
    int ci[N], out[N], si[N];
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int trial = 0; trial < 300; trial++) {
        int span = trial % 3 == 0 ? 4 : trial % 3 == 1 ? 50 : 100000;
        for (int k = 0; k < N; k++) v[k] = (float)(tu_rng_next(&r) % (uint64_t)span) - 7.5f;
        if (trial % 7 == 0) /* ascending and descending rows: the bound's worst and best case */
            for (int k = 0; k < N; k++) v[k] = (float)(trial % 2 ? k : N - k);
        for (int k = 0; k < N; k++) sv[k] = v[k], si[k] = k;
        for (int a = 1; a < N; a++) /* stable insertion sort */
            for (int p = a; p > 0 && sv[p] < sv[p - 1]; p--) {
                float t = sv[p];
                sv[p] = sv[p - 1], sv[p - 1] = t;
                int u = si[p];
                si[p] = si[p - 1], si[p - 1] = u;
            }
        size_t A = (size_t)(1 + trial % 64);
        if (trial % 50 == 49) A = N;
        qx__qinco_select_smallest(v, N, A, out, cs, ci);
        for (size_t a = 0; a < A; a++) assert_int_equal(out[a], si[a]);
    }
}

/* A cheap RQ (few k-means iterations, no refinement) so that the tests time
 * the network, not the RQ; QINCo training restarts from its codebooks. */
static qx_quantizer *small_rq(const float *x, size_t n, size_t d, size_t M, int beam) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = M;
    ro.beam = beam;
    ro.kmeans_iters = 10;
    ro.refine_iters = 0;
    ro.seed = 5;
    ro.threads = 2;
    qx_quantizer *rq;
    assert_int_equal(qx_rq_new(&rq, d, &ro), 0);
    assert_int_equal(qx_quantizer_train(rq, x, n), 0);
    return rq;
}

/* The encoder/decoder's fast path (precomputed tables for the concat layer
 * and the first W1) computes the same c' as the training forward. */
static void test_decoder_matches_training_forward(void **state) {
    (void)state;
    qx_qinco_opts o;
    size_t d = 10, nb = 50;
    tu_rng r;
    qx__qinco *q = random_net(&o, d, 4, 2, 12, 17, 0.3, &r);
    q->scale_exp = 1;
    q->scale = 2.0f;
    q->inv_scale = 0.5f;
    assert_int_equal(qx__qinco_finish(q), 0);
    float *x = malloc(sizeof(float) * nb * d), *xs = malloc(sizeof(float) * nb * d);
    float *rec = malloc(sizeof(float) * nb * d), *grad = malloc(sizeof(float) * q->nparams);
    uint8_t *codes = malloc(nb * o.M);
    for (size_t i = 0; i < nb * d; i++) x[i] = (float)(2 * tu_rng_normal(&r)), xs[i] = x[i] / 2;
    for (size_t i = 0; i < nb * o.M; i++) codes[i] = (uint8_t)(tu_rng_next(&r) % 256);
    qx__qinco_work w;
    assert_int_equal(qx__qinco_work_alloc(q, nb, &w), 0);
    double loss, steps[4];
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, NULL, codes, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    for (size_t m = 1; m <= o.M; m++) {
        assert_int_equal(qx__qinco_decode_with(q, q->params, q->tables, codes, NULL, nb, m, 1, rec), 0);
        double e = 0;
        for (size_t i = 0; i < nb * d; i++) e += ((double)x[i] - rec[i]) * ((double)x[i] - rec[i]);
        e /= (double)nb * 4; /* back to scaled units */
        /* step_loss[m] is the error after step m (index m-1) */
        assert_true(fabs(e - steps[m - 1]) <= 1e-4 * (1 + steps[m - 1]));
    }
    /* The encoder scores candidates with the same function: a beam search
     * never returns a code worse than the one it would get greedily... and
     * its chosen code's error matches the decoder's. */
    uint8_t *c2 = malloc(nb * o.M);
    assert_int_equal(qx__qinco_encode_with(q, q->params, q->tables, x, NULL, nb, 4, 256, 1, c2), 0);
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, NULL, c2, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    double before = steps[o.M - 1];
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, NULL, codes, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    assert_true(before < steps[o.M - 1]); /* searched codes beat random ones */
    qx__qinco_work_free(&w);
    free(x), free(xs), free(rec), free(grad), free(codes), free(c2);
    qx_quantizer_free(&q->base);
}

/* Contexts (an IVF centroid per vector): the decoder started from x̂_0 = ctx
 * returns x̂_m − ctx, the same reconstruction as the training forward given
 * x0 = ctx and the target x + ctx; the networks see the context (decoding
 * without it differs); the encoder's codes beat random ones under it; and a
 * model with f = 0 (the RQ) ignores it. */
static void test_context_decoder_matches_training_forward(void **state) {
    (void)state;
    qx_qinco_opts o;
    size_t d = 10, nb = 50;
    tu_rng r;
    qx__qinco *q = random_net(&o, d, 4, 2, 12, 23, 0.3, &r);
    q->scale_exp = 1;
    q->scale = 2.0f;
    q->inv_scale = 0.5f;
    q->ctx = 1;
    assert_int_equal(qx__qinco_finish(q), 0);
    float *x = malloc(sizeof(float) * nb * d), *ctx = malloc(sizeof(float) * nb * d);
    float *xs = malloc(sizeof(float) * nb * d), *x0 = malloc(sizeof(float) * nb * d);
    float *rec = malloc(sizeof(float) * nb * d), *rec0 = malloc(sizeof(float) * nb * d);
    float *grad = malloc(sizeof(float) * q->nparams);
    uint8_t *codes = malloc(nb * o.M), *c2 = malloc(nb * o.M), *c3 = malloc(nb * o.M);
    for (size_t i = 0; i < nb * d; i++) {
        x[i] = (float)(2 * tu_rng_normal(&r));
        ctx[i] = (float)(6 * tu_rng_normal(&r));
        x0[i] = ctx[i] / 2;
        xs[i] = (x[i] + ctx[i]) / 2;
    }
    for (size_t i = 0; i < nb * o.M; i++) codes[i] = (uint8_t)(tu_rng_next(&r) % 256);
    qx__qinco_work w;
    assert_int_equal(qx__qinco_work_alloc(q, nb, &w), 0);
    double loss, steps[4];
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, x0, codes, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    for (size_t m = 1; m <= o.M; m++) {
        assert_int_equal(qx__qinco_decode_with(q, q->params, q->tables, codes, ctx, nb, m, 1, rec), 0);
        double e = 0;
        for (size_t i = 0; i < nb * d; i++) e += ((double)x[i] - rec[i]) * ((double)x[i] - rec[i]);
        e /= (double)nb * 4;
        assert_true(fabs(e - steps[m - 1]) <= 1e-4 * (1 + steps[m - 1]));
    }
    assert_int_equal(qx__qinco_decode_with(q, q->params, q->tables, codes, NULL, nb, o.M, 1, rec0), 0);
    double diff = 0;
    for (size_t i = 0; i < nb * d; i++) diff = fmax(diff, fabs((double)rec[i] - rec0[i]));
    assert_true(diff > 1e-2); /* the context changed what the steps add */
    assert_int_equal(qx__qinco_encode_with(q, q->params, q->tables, x, ctx, nb, 4, 256, 1, c2), 0);
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, x0, c2, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    double searched = steps[o.M - 1];
    assert_int_equal(qx__qinco_loss_grad(q, q->params, xs, x0, codes, nb, 0.1f, &w, grad, &loss, steps, NULL), 0);
    assert_true(searched < steps[o.M - 1]);
    /* f = 0: every W2 and the concat layer zero, the codes and decodings
     * are the RQ's whatever the context */
    for (size_t m = 1; m < o.M; m++) {
        qx__qinco_net net;
        qx__qinco_net_view(q, q->params, m, &net);
        memset((float *)net.Wc, 0, sizeof(float) * (2 * d * d + d));
        for (size_t l = 0; l < q->L; l++) memset((float *)net.W2[l], 0, sizeof(float) * q->h * d);
    }
    assert_int_equal(qx__qinco_finish(q), 0);
    assert_int_equal(qx__qinco_encode_with(q, q->params, q->tables, x, ctx, nb, 4, 256, 1, c2), 0);
    assert_int_equal(qx__qinco_encode_with(q, q->params, q->tables, x, NULL, nb, 4, 256, 1, c3), 0);
    assert_memory_equal(c2, c3, nb * o.M);
    assert_int_equal(qx__qinco_decode_with(q, q->params, q->tables, c2, ctx, nb, o.M, 1, rec), 0);
    assert_int_equal(qx__qinco_decode_with(q, q->params, q->tables, c2, NULL, nb, o.M, 1, rec0), 0);
    for (size_t i = 0; i < nb * d; i++) assert_true(fabs((double)rec[i] - rec0[i]) <= 1e-5 * (1 + fabs(rec0[i]) + fabs(ctx[i])));
    qx__qinco_work_free(&w);
    free(x), free(ctx), free(xs), free(x0), free(rec), free(rec0), free(grad);
    free(codes), free(c2), free(c3);
    qx_quantizer_free(&q->base);
}

/* ---- f = 0 is the RQ --------------------------------------------------- */

static void test_f_zero_reproduces_rq(void **state) {
    (void)state;
    size_t n = 4000, d = 16;
    float *x = tu_clustered(n, d, 20, 7);
    for (int beam = 1; beam <= 3; beam += 2) {
        qx_quantizer *rq = small_rq(x, n, d, 4, beam), *qc;
        qx_qinco_opts o;
        qx_qinco_opts_init(&o);
        o.M = 4;
        o.beam = beam;
        o.A = 8;
        assert_int_equal(qx_qinco_from_rq(&qc, rq, &o), 0);
        assert_int_equal(qx_quantizer_kind(qc), QX_QUANT_QINCO);
        uint8_t *c1 = malloc(n * 4), *c2 = malloc(n * 4);
        float *r1 = malloc(sizeof(float) * n * d), *r2 = malloc(sizeof(float) * n * d);
        assert_int_equal(qx_quantizer_encode(rq, x, n, c1), 0);
        assert_int_equal(qx_quantizer_encode(qc, x, n, c2), 0);
        size_t diff = 0;
        for (size_t i = 0; i < n * 4; i++) diff += c1[i] != c2[i];
        if (diff) fprintf(stderr, "beam %d: %zu of %zu code bytes differ\n", beam, diff, n * 4);
        assert_int_equal(diff, 0);
        assert_int_equal(qx_quantizer_decode(rq, c1, n, 0, r1), 0);
        assert_int_equal(qx_quantizer_decode(qc, c1, n, 0, r2), 0);
        assert_memory_equal(r1, r2, sizeof(float) * n * d);
        /* Look-up tables: the additive codebooks are the RQ's. */
        assert_memory_equal(qx_quantizer_additive_codebooks(qc), qx_rq_codebooks(rq),
                            sizeof(float) * 4 * 256 * d);
        double m1, m2;
        assert_int_equal(qx_quantizer_mse(rq, x, n, 0, &m1), 0);
        assert_int_equal(qx_quantizer_mse(qc, x, n, 0, &m2), 0);
        assert_true(m1 == m2);
        free(c1), free(c2), free(r1), free(r2);
        qx_quantizer_free(rq);
        qx_quantizer_free(qc);
    }
    free(x);
}

/* ---- training ------------------------------------------------------------ */

static qx_quantizer *g_rq; /* the RQ the trained model starts from */

static qx_quantizer *trained_small(const float *x, size_t n, size_t d, int epochs, float valid,
                                   int reencode) {
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = 4;
    o.L = 2;
    o.h = 32;
    o.A = 16;
    o.beam = 2;
    o.epochs = epochs;
    o.batch = 128;
    o.lr = 3e-3f;
    o.seed = 5;
    o.threads = 2;
    o.valid_fraction = valid;
    o.reencode = reencode;
    if (!g_rq) g_rq = small_rq(x, n, d, 4, 2);
    qx_quantizer *q;
    assert_int_equal(qx_qinco_from_rq(&q, g_rq, &o), 0);
    assert_int_equal(qx_quantizer_train(q, x, n), 0);
    return q;
}

static qx_quantizer *g_model; /* trained once, shared by the next tests */
static float *g_x, *g_test;
static const size_t g_n = 4000, g_nt = 1000, g_d = 16;

static void test_training_beats_rq(void **state) {
    (void)state;
    double t0 = qx__now();
    g_x = manifold(g_n, g_d, 1);
    g_test = manifold(g_nt, g_d, 2);
    /* The RQ saw every training vector, so a hold-out drawn from them would
     * flatter it: no hold-out here (the best epoch is picked on training
     * vectors), and the test set is fresh points of the same manifold. */
    g_model = trained_small(g_x, g_n, g_d, 12, 0, 1);
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(g_model, &st), 0);
    assert_int_equal(st.epochs, 12);
    assert_int_equal(st.n_valid, 0);
    assert_int_equal(st.n_monitor, 1000); /* an eighth of 4,000, raised to the 1,000 minimum */
    assert_true(st.best_epoch >= 1); /* training moved it off the RQ ... */
    assert_true(st.valid_mse[st.best_epoch] < st.valid_mse[0]); /* ... to a lower training MSE */
    for (size_t e = 0; e < st.epochs; e++) assert_true(isfinite(st.train_loss[e]));
    /* The training loss (sum of per-step losses) went down. */
    assert_true(st.train_loss[st.epochs - 1] < st.train_loss[0]);
    double mq, mr;
    assert_int_equal(qx_quantizer_mse(g_model, g_test, g_nt, 0, &mq), 0);
    assert_int_equal(qx_quantizer_mse(g_rq, g_test, g_nt, 0, &mr), 0);
    fprintf(stderr, "held-out MSE: RQ %.4f, QINCo %.4f (%.3fx), %.1f s\n", mr, mq, mq / mr,
            qx__now() - t0);
    assert_true(mq < 0.95 * mr);
}

/* Codes of the whole training set recomputed every 3 epochs, the batches in
 * between regressing on them: still learns, on fresh points. */
static void test_reencode_every_k_epochs(void **state) {
    (void)state;
    double t0 = qx__now();
    qx_quantizer *q = trained_small(g_x, g_n, g_d, 12, 0, 3);
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(q, &st), 0);
    assert_int_equal(st.epochs, 12);
    assert_true(st.train_loss[st.epochs - 1] < st.train_loss[0]);
    double mq, mr;
    assert_int_equal(qx_quantizer_mse(q, g_test, g_nt, 0, &mq), 0);
    assert_int_equal(qx_quantizer_mse(g_rq, g_test, g_nt, 0, &mr), 0);
    fprintf(stderr, "reencode 3: held-out MSE RQ %.4f, QINCo %.4f (%.3fx), %.1f s\n", mr, mq,
            mq / mr, qx__now() - t0);
    assert_true(mq < 0.95 * mr);
    qx_quantizer_free(q);
}

static void test_validation_and_budget(void **state) {
    (void)state;
    /* With a hold-out: the validation MSE is tracked per epoch and the best
     * epoch kept; a tiny budget stops cleanly with a usable model. */
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = 4;
    o.h = 32;
    o.epochs = 1000;
    o.batch = 128;
    o.train_minutes = 4.0 / 60; /* 4 s */
    o.threads = 2;
    qx_quantizer *q;
    assert_int_equal(qx_qinco_from_rq(&q, g_rq, &o), 0);
    double t0 = qx__now();
    assert_int_equal(qx_quantizer_train(q, g_x, g_n), 0);
    double took = qx__now() - t0;
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(q, &st), 0);
    fprintf(stderr, "budget 4 s: %.2f s, %zu epochs, best %zu, valid %.4f -> %.4f\n", took,
            st.epochs, st.best_epoch, st.valid_mse[0], st.valid_mse[st.best_epoch]);
    assert_int_equal(st.budget_hit, 1);
    assert_true(st.epochs < 1000);
    assert_true(took < 20);
    assert_int_equal(st.n_valid, 400);
    assert_int_equal(st.n_monitor, 400); /* the hold-out */
    for (size_t e = 1; e <= st.epochs; e++) {
        assert_true(isfinite(st.valid_mse[e]));
        assert_true(st.valid_mse[st.best_epoch] <= st.valid_mse[e]);
    }
    assert_true(st.valid_mse[st.best_epoch] <= st.valid_mse[0]);
    double m;
    assert_int_equal(qx_quantizer_mse(q, g_test, g_nt, 0, &m), 0);
    assert_true(isfinite(m));
    qx_quantizer_free(q);
}

/* Wall-clock figures (sgemm rate, achieved GFLOP/s, cores) are the only
 * part of a blob that may differ between identical runs. */
static void clear_timing(qx_quantizer *q) {
    qx__qinco *p = (qx__qinco *)q;
    p->ck.sgemm_gflops = p->ck.train_gflops = p->ck.cores_used = 0;
}

static void test_deterministic_for_seed(void **state) {
    (void)state;
    /* Same seed and threads: the same model, bit for bit (short run, codes of
     * the whole training set re-encoded every 2 epochs), the held-out check
     * included. */
    qx_quantizer *a = trained_small(g_x, g_n, g_d, 2, 0.1f, 2);
    qx_quantizer *b = trained_small(g_x, g_n, g_d, 2, 0.1f, 2);
    qx_qinco_stats sa, sb;
    assert_int_equal(qx_qinco_get_stats(a, &sa), 0);
    assert_int_equal(qx_qinco_get_stats(b, &sb), 0);
    assert_int_equal(sa.checked, 1);
    assert_int_equal(sa.fallback, sb.fallback);
    assert_true(sa.check_recall_qinco == sb.check_recall_qinco);
    clear_timing(a);
    clear_timing(b);
    uint8_t *ba, *bb;
    size_t la, lb;
    assert_int_equal(qx_quantizer_serialize(a, &ba, &la), 0);
    assert_int_equal(qx_quantizer_serialize(b, &bb, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    qx_free(ba);
    qx_free(bb);
    qx_quantizer_free(a);
    qx_quantizer_free(b);
}

static void test_encode_decode_round_trip(void **state) {
    (void)state;
    qx_quantizer *q = g_model;
    size_t n = g_nt, d = g_d, M = 4;
    uint8_t *c1 = malloc(n * M), *c2 = malloc(n * M);
    float *r1 = malloc(sizeof(float) * n * d), *r2 = malloc(sizeof(float) * n * d);
    assert_int_equal(qx_quantizer_encode(q, g_test, n, c1), 0);
    /* The thread count does not change codes (chunks have fixed bounds). */
    qx_qinco_opts o;
    assert_int_equal(qx_qinco_get_opts(q, &o), 0);
    ((qx__qinco *)q)->opts.threads = 1;
    assert_int_equal(qx_quantizer_encode(q, g_test, n, c2), 0);
    assert_memory_equal(c1, c2, n * M);
    assert_int_equal(qx_quantizer_decode(q, c1, n, 0, r1), 0);
    ((qx__qinco *)q)->opts.threads = o.threads;
    /* Other batch boundaries: OpenBLAS sums a row in an order that depends on
     * its position in the call, so decodings agree to rounding, not bits, and
     * only near-ties could flip a code. */
    for (size_t i = 0; i < n; i += 77)
        assert_int_equal(qx_quantizer_decode(q, c1 + i * M, n - i < 77 ? n - i : 77, 0, r2 + i * d), 0);
    for (size_t i = 0; i < n * d; i++) assert_true(fabsf(r1[i] - r2[i]) <= 1e-5f * (1 + fabsf(r1[i])));
    for (size_t i = 0; i < n; i += 333)
        assert_int_equal(qx_quantizer_encode(q, g_test + i * d, n - i < 333 ? n - i : 333, c2 + i * M), 0);
    size_t flipped = 0;
    for (size_t i = 0; i < n; i++) flipped += memcmp(c1 + i * M, c2 + i * M, M) != 0;
    assert_true(flipped <= n / 100);
    /* Decoding agrees with the encoder's own view: the error of the chosen
     * code equals the MSE helper's. */
    double s = 0, mse;
    for (size_t i = 0; i < n * d; i++) s += ((double)g_test[i] - r1[i]) * ((double)g_test[i] - r1[i]);
    assert_int_equal(qx_quantizer_mse(q, g_test, n, 0, &mse), 0);
    assert_true(fabs(s / (double)n - mse) <= 1e-6 * mse);
    /* Multi-rate: more steps, lower error. */
    double prev = INFINITY;
    for (size_t m = 1; m <= M; m++) {
        double e;
        assert_int_equal(qx_quantizer_mse(q, g_test, n, m, &e), 0);
        assert_true(e < prev);
        prev = e;
    }
    /* A wider search never does worse on average. */
    assert_int_equal(qx_qinco_set_search(q, 1, 4), 0);
    double narrow;
    assert_int_equal(qx_quantizer_mse(q, g_test, n, 0, &narrow), 0);
    assert_int_equal(qx_qinco_set_search(q, o.beam, o.A), 0);
    assert_true(narrow >= mse * 0.999);
    /* LUT = <q, additive codebooks>, and the additive decoding is close. */
    const float *a = qx_quantizer_additive_codebooks(q);
    assert_non_null(a);
    float *lut = malloc(sizeof(float) * 2 * M * 256);
    assert_int_equal(qx_quantizer_lut(q, g_test, 2, lut), 0);
    for (size_t i = 0; i < 2; i++)
        for (size_t t = 0; t < M * 256; t += 37) {
            double ref = 0;
            for (size_t j = 0; j < d; j++) ref += (double)g_test[i * d + j] * a[t * d + j];
            assert_true(fabs(lut[i * M * 256 + t] - ref) <= 1e-4 * (1 + fabs(ref)));
        }
    double add_err = 0, tot = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double v = 0;
            for (size_t m = 0; m < M; m++) v += a[(m * 256 + c1[i * M + m]) * d + j];
            add_err += (v - r1[i * d + j]) * (v - r1[i * d + j]);
            tot += (double)r1[i * d + j] * r1[i * d + j];
        }
    fprintf(stderr, "additive decoding: relative error %.4f, exact MSE %.4f, additive-vs-exact %.4f\n",
            add_err / tot, mse, add_err / (double)n);
    assert_true(add_err / tot < 0.05);
    free(lut);
    free(c1), free(c2), free(r1), free(r2);
}

static void test_save_load_bit_identical(void **state) {
    (void)state;
    qx_quantizer *q = g_model, *l = NULL;
    uint8_t *blob;
    size_t len;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    assert_int_equal(qx_quantizer_deserialize(blob, len, &l), 0);
    assert_int_equal(qx_quantizer_kind(l), QX_QUANT_QINCO);
    size_t n = g_nt, d = g_d, M = 4;
    uint8_t *c1 = malloc(n * M), *c2 = malloc(n * M);
    float *r1 = malloc(sizeof(float) * n * d), *r2 = malloc(sizeof(float) * n * d);
    assert_int_equal(qx_quantizer_encode(q, g_test, n, c1), 0);
    assert_int_equal(qx_quantizer_encode(l, g_test, n, c2), 0);
    assert_memory_equal(c1, c2, n * M);
    assert_int_equal(qx_quantizer_decode(q, c1, n, 0, r1), 0);
    assert_int_equal(qx_quantizer_decode(l, c1, n, 0, r2), 0);
    assert_memory_equal(r1, r2, sizeof(float) * n * d);
    assert_memory_equal(qx_quantizer_additive_codebooks(q), qx_quantizer_additive_codebooks(l),
                        sizeof(float) * M * 256 * d);
    qx_qinco_stats a, b;
    assert_int_equal(qx_qinco_get_stats(q, &a), 0);
    assert_int_equal(qx_qinco_get_stats(l, &b), 0);
    assert_int_equal(a.epochs, b.epochs);
    assert_int_equal(a.best_epoch, b.best_epoch);
    assert_memory_equal(a.valid_mse, b.valid_mse, sizeof(double) * (a.epochs + 1));
    /* Serializing the loaded model gives the same blob. */
    uint8_t *blob2;
    size_t len2;
    assert_int_equal(qx_quantizer_serialize(l, &blob2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(blob, blob2, len);
    qx_free(blob2);
    qx_quantizer_free(l);

    /* Corruption: every truncation point fails cleanly, and so do flipped
     * bytes in the header, the options and the weights. */
    for (size_t cut = 0; cut < len; cut += (cut < 200 ? 1 : 997)) {
        l = NULL;
        assert_int_equal(qx_quantizer_deserialize(blob, cut, &l), QX_EFORMAT);
        assert_null(l);
    }
    size_t flips[] = {20, 24, 28, 32, 60, 100, 130, len / 2, len - 5};
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        blob[flips[i]] ^= 0x5A;
        l = NULL;
        int rc = qx_quantizer_deserialize(blob, len, &l);
        assert_true(rc == QX_EFORMAT);
        assert_null(l);
        assert_true(strlen(qx_last_error()) > 0);
        blob[flips[i]] ^= 0x5A;
    }
    qx_free(blob);
    free(c1), free(c2), free(r1), free(r2);
}


/* ---- never worse than its RQ ------------------------------------------- */

/* Built to fail: a learning rate of 1 wrecks the network in its first steps,
 * so no epoch beats the RQ on the hold-out; the quantizer must fall back to
 * an RQ trained on all the vectors with the initial RQ's options and encode
 * exactly like it, before and after a save/load. */
static void test_fallback_when_network_loses(void **state) {
    (void)state;
    size_t n = 3000, d = 16, M = 4;
    float *x = manifold(n, d, 11);
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = M;
    o.h = 16;
    o.epochs = 2;
    o.lr = 1.0f;
    o.batch = 64;
    o.threads = 2;
    o.valid_fraction = 0.2f;
    o.rq_refine_min = 0;
    qx_quantizer *q;
    assert_int_equal(qx_qinco_new(&q, d, &o), 0);
    assert_int_equal(qx_quantizer_train(q, x, n), 0);
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(q, &st), 0);
    fprintf(stderr, "built to fail: best epoch %zu, MSE %.4f vs RQ %.4f, recall@1 %.3f vs %.3f\n",
            st.best_epoch, st.check_mse_qinco, st.check_mse_rq, st.check_recall_qinco,
            st.check_recall_rq);
    assert_int_equal(st.checked, 1);
    assert_int_equal(st.fallback, 1);
    assert_int_equal(st.check_nq, 600);
    assert_int_equal(st.check_nbase, 2400);
    assert_true(st.check_recall_rq > 0 && st.check_recall_rq <= 1);
    /* The RQ it became: the one qx_rq would train on the same vectors. */
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = M;
    ro.seed = o.seed;
    ro.threads = 2;
    ro.refine_min_per_codeword = 0;
    qx_quantizer *rq;
    assert_int_equal(qx_rq_new(&rq, d, &ro), 0);
    assert_int_equal(qx_quantizer_train(rq, x, n), 0);
    uint8_t *c1 = malloc(n * M), *c2 = malloc(n * M);
    float *lq = malloc(sizeof(float) * 2 * M * 256), *lr = malloc(sizeof(float) * 2 * M * 256);
    assert_int_equal(qx_quantizer_encode(rq, x, n, c1), 0);
    assert_int_equal(qx_quantizer_encode(q, x, n, c2), 0);
    assert_memory_equal(c1, c2, n * M);
    assert_int_equal(qx_quantizer_lut(rq, x, 2, lr), 0);
    assert_int_equal(qx_quantizer_lut(q, x, 2, lq), 0);
    assert_memory_equal(lr, lq, sizeof(float) * 2 * M * 256);
    double mr, mq;
    assert_int_equal(qx_quantizer_mse(rq, x, n, 0, &mr), 0);
    assert_int_equal(qx_quantizer_mse(q, x, n, 0, &mq), 0);
    assert_true(mr == mq);
    /* The blob keeps the fallback and its figures. */
    uint8_t *blob;
    size_t len;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    qx_quantizer *l = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &l), 0);
    qx_qinco_stats sl;
    assert_int_equal(qx_qinco_get_stats(l, &sl), 0);
    assert_int_equal(sl.fallback, 1);
    assert_true(sl.check_mse_rq == st.check_mse_rq && sl.check_recall_qinco == st.check_recall_qinco);
    assert_int_equal(qx_quantizer_encode(l, x, n, c2), 0);
    assert_memory_equal(c1, c2, n * M);
    /* a flipped byte inside the embedded RQ is caught */
    blob[len - 40] ^= 0x11;
    qx_quantizer *bad = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &bad), QX_EFORMAT);
    assert_null(bad);
    qx_free(blob);
    qx_quantizer_free(l);
    qx_quantizer_free(rq);
    qx_quantizer_free(q);
    free(c1), free(c2), free(lq), free(lr), free(x);
}

#define QX_SGEMM_SLACK 1.5

/* On data where the network wins, the check keeps it, with figures that say
 * why; training reports a throughput line per epoch and figures below the
 * sgemm rate measured in the same run. */
static void test_check_keeps_winner_and_reports_throughput(void **state) {
    (void)state;
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = 4;
    o.L = 2;
    o.h = 32;
    o.A = 16;
    o.beam = 2;
    o.epochs = 12;
    o.batch = 128;
    o.lr = 3e-3f;
    o.seed = 5;
    o.threads = 2;
    o.valid_fraction = 0.2f;
    o.verbose = 1;
    qx_quantizer *q;
    assert_int_equal(qx_qinco_from_rq(&q, g_rq, &o), 0);
    /* capture the per-epoch lines */
    char path[] = "/tmp/qx_qinco_verbose_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    int rc = qx_quantizer_train(q, g_x, g_n);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[1024];
    size_t epoch_lines = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "qinco: [")) continue;
        double g, pct, sg, cores;
        const char *p = strstr(line, " lr ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, " lr %*g %lf GFLOP/s (%lf%% of sgemm %lf) cores %lf", &g, &pct,
                                &sg, &cores), 4);
        assert_non_null(strstr(line, "ETA"));
        assert_non_null(strstr(line, "held-out MSE"));
        /* sane: below the sgemm reference, with room for noise (the reference is one short
         * timing; on a loaded machine it can come out below an epoch's rate). A FLOP count
         * off by a factor (e.g. forward counted twice) still fails. */
        assert_true(g > 0 && sg > 0 && g < QX_SGEMM_SLACK * sg);
        assert_true(cores > 0 && cores < 2.5);
        epoch_lines++;
    }
    fclose(f);
    unlink(path);
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(q, &st), 0);
    assert_int_equal(epoch_lines, st.epochs);
    fprintf(stderr, "check: MSE %.4f vs RQ %.4f, recall@1 %.3f vs %.3f; %.1f GFLOP/s of sgemm %.1f, "
            "%.2f cores\n", st.check_mse_qinco, st.check_mse_rq, st.check_recall_qinco,
            st.check_recall_rq, st.train_gflops, st.sgemm_gflops, st.cores_used);
    assert_int_equal(st.checked, 1);
    assert_int_equal(st.fallback, 0);
    assert_true(st.check_mse_qinco < st.check_mse_rq);
    assert_true(st.check_recall_qinco >= st.check_recall_rq);
    assert_true(st.train_gflops > 0 && st.train_gflops < QX_SGEMM_SLACK * st.sgemm_gflops);
    assert_true(st.cores_used > 0 && st.cores_used < 2.5);
    for (size_t e = 0; e < st.epochs; e++)
        assert_true(st.epoch_gflops[e] > 0 && st.epoch_gflops[e] < QX_SGEMM_SLACK * st.sgemm_gflops);
    qx_quantizer_free(q);
}

/* Version-1 blobs (before the check) still load: the current blob cut back
 * to the version-1 layout, with its CRC recomputed. */
static void test_loads_version1_blob(void **state) {
    (void)state;
    qx_quantizer *q = g_model;
    uint8_t *blob;
    size_t len;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    /* the common header's body starts after its fixed part; find "QNCO" */
    size_t body = 0;
    while (body + 4 < len && memcmp(blob + body, "QNCO", 4)) body++;
    assert_true(body + 4 < len);
    size_t extra = 4 + 8 + 8 + 7 * 8 + 8; /* version 2 fields, no fallback RQ here */
    size_t l1 = len - extra;
    uint8_t *v1 = malloc(l1);
    memcpy(v1, blob, l1 - 4);
    uint32_t one = 1;
    memcpy(v1 + body + 4, &one, 4);
    uint32_t crc = qx__crc32(0, v1 + body, l1 - 4 - body);
    memcpy(v1 + l1 - 4, &crc, 4);
    qx_quantizer *l = NULL;
    int rc = qx_quantizer_deserialize(v1, l1, &l);
    if (rc) fprintf(stderr, "version 1: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
    size_t n = g_nt, M = 4;
    uint8_t *c1 = malloc(n * M), *c2 = malloc(n * M);
    assert_int_equal(qx_quantizer_encode(q, g_test, n, c1), 0);
    assert_int_equal(qx_quantizer_encode(l, g_test, n, c2), 0);
    assert_memory_equal(c1, c2, n * M);
    qx_qinco_stats st;
    assert_int_equal(qx_qinco_get_stats(l, &st), 0);
    assert_int_equal(st.checked, 0);
    assert_int_equal(st.fallback, 0);
    qx_quantizer_free(l);
    free(c1), free(c2), free(v1);
    qx_free(blob);
}

/* ---- contexts in an IVF ---------------------------------------------------- */

/* ids of the k nearest (exact distances) of nq queries, in an IVF with the
 * given quantizer: nprobe = all lists, re-ranked by exact decoding */
static void ivf_ctx_search(const qx_ivf *ivf, const float *qv, size_t nq, size_t rerank, int64_t *ids,
                           float *dist) {
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 16;
    p.rerank = rerank;
    assert_int_equal(qx_ivf_search(ivf, NULL, qv, nq, 10, &p, dist, ids), 0);
}

/* An IVF-QINCo whose networks see each vector's list centroid: trained with
 * the centroids as contexts, it says so; its re-ranked search finds the true
 * neighbours as well as the same model's look-up-table scan or better (the
 * re-rank decodes with the centroids: decoding without them would put the
 * candidates elsewhere); the MSE with the right contexts is the one the
 * build reports; a save and a load keep the flag and the results. */
static void test_ivf_context_model(void **state) {
    (void)state;
    size_t d = 16, nb = 4000, nq = 100;
    float *all = tu_clustered(nb + nq, d, 40, 5);
    const float *qv = all + nb * d;
    int64_t *gt = tu_brute_knn(all, nb, qv, nq, d, 10);
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.M = 4;
    o.epochs = 3;
    o.threads = 1;
    o.fallback = 0;
    o.context = 1;
    o.seed = 3;
    qx_quantizer *q = NULL;
    assert_int_equal(qx_qinco_new(&q, d, &o), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 16;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, d, q, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, all, nb), 0);
    int64_t *ids = malloc(sizeof(int64_t) * nb);
    for (size_t i = 0; i < nb; i++) ids[i] = (int64_t)i;
    assert_int_equal(qx_ivf_add(ivf, all, ids, nb), 0);
    const qx_quantizer *iq = qx_ivf_quantizer(ivf);
    assert_true(qx_quantizer_uses_context(iq));

    /* MSE of the residuals with their centroids as contexts, against none:
     * both valid codes, and the contexts are what the model was trained on */
    float *res = malloc(sizeof(float) * nb * d), *ctx = malloc(sizeof(float) * nb * d);
    uint32_t *lists = malloc(sizeof(uint32_t) * nb);
    assert_int_equal(qx_ivf_residuals(ivf, all, nb, lists, res), 0);
    qx_ivf_centroid_rows(ivf, lists, nb, ctx);
    double m_ctx, m_none;
    assert_int_equal(qx_quantizer_mse_ctx(iq, res, ctx, nb, 0, &m_ctx), 0);
    assert_int_equal(qx_quantizer_mse(iq, res, nb, 0, &m_none), 0);
    fprintf(stderr, "ivf context model: MSE %.4g with the centroids, %.4g without\n", m_ctx, m_none);
    assert_true(m_ctx > 0 && m_ctx != m_none);
    /* DERP's codebook health measures the codes the index stores: with the contexts */
    qx_derp_health *h = NULL;
    assert_int_equal(qx_derp_health_compute_ctx(iq, res, ctx, nb, NULL, NULL, &h), 0);
    assert_true(fabs(h->steps[h->M - 1].mse - m_ctx) <= 1e-4 * m_ctx);
    qx_derp_health_free(h);

    int64_t r0[1000], r1[1000], r2[1000];
    float d0[1000], d1[1000], d2[1000];
    ivf_ctx_search(ivf, qv, nq, 0, r0, d0);
    ivf_ctx_search(ivf, qv, nq, 100, r1, d1);
    double rec_lut = tu_k_recall(r0, 10, gt, NULL, 10, nq, 10), rec_rr = tu_k_recall(r1, 10, gt, NULL, 10, nq, 10);
    fprintf(stderr, "ivf context model: 10-recall@10 %.3f (look-up tables), %.3f (re-ranked by decoding)\n",
            rec_lut, rec_rr);
    assert_true(rec_rr >= 0.5);
    assert_true(rec_rr >= rec_lut - 0.02);
    /* exact distances to the decoded vectors: centroid + decode_ctx */
    for (size_t i = 0; i < nq; i++) {
        int64_t id = r1[i * 10];
        uint8_t code[8];
        float rec[16];
        assert_int_equal(qx_quantizer_encode_ctx(iq, res + id * d, ctx + id * d, 1, code), 0);
        assert_int_equal(qx_quantizer_decode_ctx(iq, code, ctx + id * d, 1, 0, rec), 0);
        double e = 0;
        for (size_t j = 0; j < d; j++) {
            double v = (double)qv[i * d + j] - (ctx[id * d + j] + rec[j]);
            e += v * v;
        }
        assert_true(fabs(e - d1[i * 10]) <= 1e-3 * (1 + e));
    }

    const char *path = tu_tmpfile("ctx.qinx");
    assert_int_equal(qx_ivf_save(ivf, path), 0);
    qx_ivf *back = NULL;
    assert_int_equal(qx_ivf_load(path, &back), 0);
    assert_true(qx_quantizer_uses_context(qx_ivf_quantizer(back)));
    ivf_ctx_search(back, qv, nq, 100, r2, d2);
    assert_memory_equal(r1, r2, sizeof(int64_t) * nq * 10);
    assert_memory_equal(d1, d2, sizeof(float) * nq * 10);
    qx_ivf_free(back);
    qx_ivf_free(ivf);
    free(all), free(gt), free(ids), free(res), free(ctx), free(lists);
}

/* ---- bad parameters -------------------------------------------------------- */

static void expect_bad(const qx_qinco_opts *o, size_t d, int code, const char *word) {
    qx_quantizer *q = (qx_quantizer *)1;
    assert_int_equal(qx_qinco_new(&q, d, o), code);
    assert_null(q);
    if (!strstr(qx_last_error(), word)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", qx_last_error(), word);
        fail();
    }
}

static void test_bad_parameters(void **state) {
    (void)state;
    qx_qinco_opts o;
    qx_qinco_opts_init(&o);
    o.h = 0;
    expect_bad(&o, 16, QX_EINVAL, "h=0");
    qx_qinco_opts_init(&o);
    o.L = 17;
    expect_bad(&o, 16, QX_EINVAL, "L=17");
    o.L = -1;
    expect_bad(&o, 16, QX_EINVAL, "L=-1");
    qx_qinco_opts_init(&o);
    o.M = 65;
    expect_bad(&o, 16, QX_EINVAL, "M=65");
    o.M = 0;
    expect_bad(&o, 16, QX_EINVAL, "M=0");
    qx_qinco_opts_init(&o);
    o.A = 257;
    expect_bad(&o, 16, QX_EINVAL, "A=257");
    qx_qinco_opts_init(&o);
    o.beam = 0;
    expect_bad(&o, 16, QX_EINVAL, "beam=0");
    qx_qinco_opts_init(&o);
    o.lr = NAN;
    expect_bad(&o, 16, QX_EINVAL, "learning rate");
    qx_qinco_opts_init(&o);
    o.valid_fraction = 0.9f;
    expect_bad(&o, 16, QX_EINVAL, "valid_fraction");
    qx_qinco_opts_init(&o);
    o.batch = 1;
    expect_bad(&o, 16, QX_EINVAL, "batch");
    qx_qinco_opts_init(&o);
    o.train_minutes = -1;
    expect_bad(&o, 16, QX_EINVAL, "train_minutes");
    qx_qinco_opts_init(&o);
    o.reencode = 0;
    expect_bad(&o, 16, QX_EINVAL, "reencode=0");
    qx_qinco_opts_init(&o);
    o.step_share = 101.0f;
    expect_bad(&o, 16, QX_EINVAL, "step_share");
    o.step_share = NAN;
    expect_bad(&o, 16, QX_EINVAL, "step_share");
    qx_qinco_opts_init(&o);
    expect_bad(&o, 0, QX_EDIM, "dimension 0");

    /* From an RQ: steps must match, the RQ must be trained, a QINCo is no RQ. */
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = 2;
    qx_quantizer *rq, *q = NULL;
    assert_int_equal(qx_rq_new(&rq, 8, &ro), 0);
    qx_qinco_opts_init(&o);
    o.M = 2;
    assert_int_equal(qx_qinco_from_rq(&q, rq, &o), QX_ESTATE);
    float *x = tu_clustered(512, 8, 4, 3);
    assert_int_equal(qx_quantizer_train(rq, x, 512), 0);
    o.M = 3;
    assert_int_equal(qx_qinco_from_rq(&q, rq, &o), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "M=2"));
    o.M = 2;
    assert_int_equal(qx_qinco_from_rq(&q, rq, &o), 0);
    qx_quantizer *q2 = NULL;
    assert_int_equal(qx_qinco_from_rq(&q2, q, &o), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "not rq"));
    assert_int_equal(qx_qinco_get_stats(rq, &(qx_qinco_stats){0}), QX_EINVAL);
    assert_int_equal(qx_qinco_set_search(q, 0, 4), QX_EINVAL);
    assert_int_equal(qx_qinco_set_search(q, 2, 300), QX_EINVAL);

    /* A blob whose d disagrees with the model's parameter count. */
    uint8_t *blob;
    size_t len;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    uint32_t d9 = 9;
    memcpy(blob + 12, &d9, 4);
    qx_quantizer *l = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &l), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "parameters"));
    qx_free(blob);

    /* Untrained: encode refuses; NaN training data is named. */
    qx_quantizer *u;
    qx_qinco_opts_init(&o);
    o.M = 2;
    assert_int_equal(qx_qinco_new(&u, 8, &o), 0);
    uint8_t code[2];
    assert_int_equal(qx_quantizer_encode(u, x, 1, code), QX_ESTATE);
    x[5] = NAN;
    assert_int_equal(qx_quantizer_train(u, x, 512), QX_EINVAL);
    qx_quantizer_free(u);
    qx_quantizer_free(q);
    qx_quantizer_free(rq);
    free(x);
}

static int teardown(void **state) {
    (void)state;
    qx_quantizer_free(g_model);
    qx_quantizer_free(g_rq);
    free(g_x);
    free(g_test);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_sharded_gradient_matches_single_pass),
        cmocka_unit_test(test_preselection_matches_stable_sort),
        cmocka_unit_test(test_decoder_matches_training_forward),
        cmocka_unit_test(test_context_decoder_matches_training_forward),
        cmocka_unit_test(test_ivf_context_model),
        cmocka_unit_test(test_f_zero_reproduces_rq),
        cmocka_unit_test(test_training_beats_rq),
        cmocka_unit_test(test_reencode_every_k_epochs),
        cmocka_unit_test(test_validation_and_budget),
        cmocka_unit_test(test_deterministic_for_seed),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_save_load_bit_identical),
        cmocka_unit_test(test_loads_version1_blob),
        cmocka_unit_test(test_fallback_when_network_loses),
        cmocka_unit_test(test_check_keeps_winner_and_reports_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
