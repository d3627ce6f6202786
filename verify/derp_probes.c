/* verify/derp_probes.c — random probes, projections, and the one- and
 * two-sample tests run over a family of P probes.
 *
 * Decisions:
 * 1. Probes are Gaussian vectors (xoshiro256** + Box–Muller) normalised to
 *    unit length, i.e. uniform on the sphere; one stream in probe order, so
 *    probe p depends only on (seed, d, p), not on P.
 * 2. Projection is one cblas_sgemm: proj (P x n) = probes (P x d) * x^T,
 *    probe-major so each probe's sample is contiguous for sorting.
 * 3. Above opts.max_test_n vectors a deterministic evenly strided subsample
 *    is tested (rows floor(i n / m)): reproducible, no generator needed, and
 *    spread over the whole file in case its order is not random. The
 *    subsample is gathered in blocks so memory stays O(block * d).
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "derp_impl.h"
#include "qinx/vecfile.h"

#define QX__DERP_GATHER_BLOCK 1024

int qx_derp_probes_make(size_t P, size_t d, uint64_t seed, float *probes) {
    if (!probes) return qx__fail(QX_EINVAL, "probes: NULL output");
    if (P < 1 || P > QX_DERP_MAX_PROBES)
        return qx__fail(QX_EINVAL, "probes: P=%zu, must be 1..%d", P, QX_DERP_MAX_PROBES);
    if (d < 1 || d > QX_MAX_DIM)
        return qx__fail(QX_EDIM, "probes: d=%zu, must be 1..%d", d, QX_MAX_DIM);
    qx__derp_rng r;
    qx__derp_rng_seed(&r, seed);
    double spare = 0;
    int have_spare = 0;
    for (size_t p = 0; p < P; p++) {
        float *u = probes + p * d;
        double norm2;
        do {
            norm2 = 0;
            for (size_t j = 0; j < d; j++) {
                double g;
                if (have_spare) {
                    g = spare;
                    have_spare = 0;
                } else {
                    /* 1 - U lies in (0, 1], so log never sees 0. */
                    double u1 = 1.0 - qx__derp_rng_uniform(&r), u2 = qx__derp_rng_uniform(&r);
                    double rad = sqrt(-2.0 * log(u1));
                    g = rad * cos(2.0 * M_PI * u2);
                    spare = rad * sin(2.0 * M_PI * u2);
                    have_spare = 1;
                }
                u[j] = (float)g;
                norm2 += g * g;
            }
        } while (norm2 < 1e-20); /* only conceivable for d = 1: redraw */
        double inv = 1.0 / sqrt(norm2);
        for (size_t j = 0; j < d; j++) u[j] = (float)(u[j] * inv);
    }
    return 0;
}

static int check_dims(size_t n, size_t d, size_t P, const char *what) {
    if (d < 1 || d > QX_MAX_DIM) return qx__fail(QX_EDIM, "%s: d=%zu, must be 1..%d", what, d,
                                                 QX_MAX_DIM);
    if (P < 1 || P > QX_DERP_MAX_PROBES)
        return qx__fail(QX_EINVAL, "%s: P=%zu, must be 1..%d", what, P, QX_DERP_MAX_PROBES);
    if (n > (size_t)INT_MAX)
        return qx__fail(QX_ELIMIT, "%s: n=%zu above the BLAS limit %d", what, n, INT_MAX);
    return 0;
}

int qx_derp_project(const float *x, size_t n, size_t d, const float *probes, size_t P,
                    float *proj) {
    int rc = check_dims(n, d, P, "project");
    if (rc) return rc;
    if (n == 0) return 0;
    if (!x || !probes || !proj) return qx__fail(QX_EINVAL, "project: NULL argument");
    size_t total;
    if (!qx__mul(n, d, &total)) return qx__fail(QX_ENOMEM, "project: n*d overflows");
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "project: vector %zu has a NaN or Inf at dimension %zu",
                        (size_t)bad / d, (size_t)bad % d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)n, (int)d, 1.0f, probes,
                (int)d, x, (int)d, 0.0f, proj, (int)n);
    return 0;
}

/* Project the m-row strided subsample of x (n rows) into proj (P x m). */
static int project_subsample(const float *x, size_t n, size_t m, size_t d, const float *probes,
                             size_t P, float *proj) {
    if (m == n) return qx_derp_project(x, n, d, probes, P, proj);
    int rc = check_dims(m, d, P, "project");
    if (rc) return rc;
    size_t bytes;
    if (!qx__mul3(QX__DERP_GATHER_BLOCK, d, sizeof(float), &bytes))
        return qx__fail(QX_ENOMEM, "project: block overflows");
    float *blk = qx__aligned_alloc(bytes);
    if (!blk) return qx__fail(QX_ENOMEM, "project: %zu-byte gather block", bytes);
    for (size_t i0 = 0; i0 < m; i0 += QX__DERP_GATHER_BLOCK) {
        size_t b = m - i0 < QX__DERP_GATHER_BLOCK ? m - i0 : QX__DERP_GATHER_BLOCK;
        for (size_t i = 0; i < b; i++)
            memcpy(blk + i * d, x + qx_sample_index(i0 + i, n, m) * d, d * sizeof(float));
        long bad = qx__first_nonfinite(blk, b * d);
        if (bad >= 0) {
            qx__aligned_free(blk);
            return qx__fail(QX_EINVAL, "project: a vector has a NaN or Inf");
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)b, (int)d, 1.0f,
                    probes, (int)d, blk, (int)d, 0.0f, proj + i0, (int)m);
    }
    qx__aligned_free(blk);
    return 0;
}

static int load_sorted(const float *src, size_t n, double *dst, uint32_t *tmp, size_t probe) {
    for (size_t i = 0; i < n; i++)
        /* Finite inputs can still overflow float in the dot product. */
        if (!isfinite(src[i]))
            return qx__fail(QX_EINVAL, "derp: projection on probe %zu overflows float", probe);
    qx__derp_sort_floats(src, n, dst, tmp);
    return 0;
}

int qx__derp_normality_proj(const float *proj, size_t P, size_t n, double alpha,
                            qx_derp_family *out) {
    if (n < QX_DERP_MIN_SAMPLE)
        return qx__fail(QX_EINVAL, "normality: n=%zu, need at least %d", n, QX_DERP_MIN_SAMPLE);
    int rc = qx__derp_family_alloc(out, P, alpha);
    if (rc) return rc;
    out->n = n;
    double *v = qx__malloc(n * sizeof(double)); /* n*P floats exist: no overflow */
    uint32_t *tmp = qx__malloc(n * 2 * sizeof(uint32_t));
    if (!v || !tmp) rc = qx__fail(QX_ENOMEM, "normality: %zu values", n);
    for (size_t p = 0; rc == 0 && p < P; p++) {
        rc = load_sorted(proj + p * n, n, v, tmp, p);
        if (rc) break;
        out->D[p] = qx__derp_lilliefors_sorted(v, n);
        out->p[p] = qx_derp_lilliefors_pvalue(out->D[p], n);
    }
    qx__free(v);
    qx__free(tmp);
    if (rc == 0) rc = qx__derp_family_finish(out);
    if (rc) qx_derp_family_clear(out);
    return rc;
}

/* Probes and a P x m projection buffer for one set. */
static int make_probes(size_t P, size_t d, uint64_t seed, float **probes) {
    size_t bytes;
    if (!qx__mul3(P, d, sizeof(float), &bytes) || !(*probes = qx__aligned_alloc(bytes)))
        return qx__fail(QX_ENOMEM, "derp: %zu probes of dimension %zu", P, d);
    int rc = qx_derp_probes_make(P, d, seed, *probes);
    if (rc) {
        qx__aligned_free(*probes);
        *probes = NULL;
    }
    return rc;
}

static int alloc_proj(size_t P, size_t m, float **proj) {
    size_t bytes;
    if (!qx__mul3(P, m, sizeof(float), &bytes) || !(*proj = qx__aligned_alloc(bytes)))
        return qx__fail(QX_ENOMEM, "derp: projections %zu x %zu", P, m);
    return 0;
}

int qx_derp_normality(const float *x, size_t n, size_t d, const qx_derp_opts *opts,
                      qx_derp_family *out) {
    qx_derp_opts o;
    if (!out) return qx__fail(QX_EINVAL, "normality: NULL result");
    memset(out, 0, sizeof *out);
    int rc = qx__derp_opts_check(opts, &o);
    if (rc) return rc;
    if (!x) return qx__fail(QX_EINVAL, "normality: NULL vectors");
    if (n < QX_DERP_MIN_SAMPLE)
        return qx__fail(QX_EINVAL, "normality: n=%zu, need at least %d", n, QX_DERP_MIN_SAMPLE);
    rc = check_dims(0, d, o.probes, "normality");
    if (rc) return rc;
    size_t m = qx__derp_sub_size(n, o.max_test_n);
    float *probes = NULL, *proj = NULL;
    rc = make_probes(o.probes, d, o.seed, &probes);
    if (rc == 0) rc = alloc_proj(o.probes, m, &proj);
    if (rc == 0) rc = project_subsample(x, n, m, d, probes, o.probes, proj);
    if (rc == 0) rc = qx__derp_normality_proj(proj, o.probes, m, o.alpha, out);
    qx__aligned_free(probes);
    qx__aligned_free(proj);
    return rc;
}

int qx_derp_two_sample(const float *a, size_t na, const float *b, size_t nb, size_t d,
                       const qx_derp_opts *opts, qx_derp_family *out) {
    qx_derp_opts o;
    if (!out) return qx__fail(QX_EINVAL, "two_sample: NULL result");
    memset(out, 0, sizeof *out);
    int rc = qx__derp_opts_check(opts, &o);
    if (rc) return rc;
    if (!a || !b) return qx__fail(QX_EINVAL, "two_sample: NULL vectors");
    if (na == 0 || nb == 0)
        return qx__fail(QX_EINVAL, "two_sample: empty set (%zu, %zu vectors)", na, nb);
    rc = check_dims(0, d, o.probes, "two_sample");
    if (rc) return rc;
    size_t ma = qx__derp_sub_size(na, o.max_test_n), mb = qx__derp_sub_size(nb, o.max_test_n);
    float *probes = NULL, *pa = NULL, *pb = NULL;
    double *va = NULL, *vb = NULL;
    uint32_t *tmp = NULL;
    rc = make_probes(o.probes, d, o.seed, &probes);
    if (rc == 0) rc = alloc_proj(o.probes, ma, &pa);
    if (rc == 0) rc = alloc_proj(o.probes, mb, &pb);
    if (rc == 0) rc = project_subsample(a, na, ma, d, probes, o.probes, pa);
    if (rc == 0) rc = project_subsample(b, nb, mb, d, probes, o.probes, pb);
    if (rc == 0) {
        va = qx__malloc(ma * sizeof(double));
        vb = qx__malloc(mb * sizeof(double));
        tmp = qx__malloc((ma > mb ? ma : mb) * 2 * sizeof(uint32_t));
        if (!va || !vb || !tmp) rc = qx__fail(QX_ENOMEM, "two_sample: sort buffers");
    }
    if (rc == 0) rc = qx__derp_family_alloc(out, o.probes, o.alpha);
    if (rc == 0 && !(out->W = qx__calloc(o.probes, sizeof(double))))
        rc = qx__fail(QX_ENOMEM, "two_sample: effects of %zu probes", o.probes);
    out->min_effect = o.min_effect;
    for (size_t p = 0; rc == 0 && p < o.probes; p++) {
        rc = load_sorted(pa + p * ma, ma, va, tmp, p);
        if (rc == 0) rc = load_sorted(pb + p * mb, mb, vb, tmp, p);
        if (rc) break;
        out->D[p] = qx__derp_ks2_sorted(va, ma, vb, mb);
        out->p[p] = qx__derp_ks2_pvalue(out->D[p], ma, mb);
        qx__derp_w1_sorted(va, ma, vb, mb, &out->W[p]);
    }
    if (rc == 0) {
        out->n_ref = ma;
        out->n = mb;
        rc = qx__derp_family_finish(out);
    }
    if (rc) qx_derp_family_clear(out);
    qx__aligned_free(probes);
    qx__aligned_free(pa);
    qx__aligned_free(pb);
    qx__free(va);
    qx__free(vb);
    qx__free(tmp);
    return rc;
}
