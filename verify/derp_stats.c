/* verify/derp_stats.c — the statistics of DERP: a portable generator, the
 * one-sample Lilliefors test, the two-sample Kolmogorov–Smirnov test, the
 * Kolmogorov distribution and the Holm–Bonferroni combination of probes.
 *
 * Decisions:
 * 1. Lilliefors p-values follow Dallal & Wilkinson (1986, The American
 *    Statistician 40:294), "An analytic approximation to the distribution of
 *    Lilliefors's test statistic for normality": their formula is fitted for
 *    p < 0.1 and n <= 100; for n > 100 D is rescaled by (n/100)^0.49 and the
 *    formula evaluated at n = 100. Above 0.1 the p-value comes from
 *    Stephens' (1974, JASA 69:730) modified statistic
 *    Z = D (sqrt(n) - 0.01 + 0.85/sqrt(n)) through the piecewise quartic fit
 *    used by R's nortest::lillie.test. This is an approximation — the tests
 *    check the rejection rate of normal samples is near alpha.
 * 2. The two-sample p-value is Q_KS(lambda) with lambda = (sqrt(ne) + 0.12 +
 *    0.11/sqrt(ne)) D, ne = n1 n2/(n1 + n2) (Numerical Recipes 3rd ed.,
 *    §14.3.3; Stephens 1970). Q_KS uses the alternating series for
 *    lambda >= 1.18 and the Jacobi-transformed series 1 - sqrt(2 pi)/lambda
 *    sum exp(-(2j-1)^2 pi^2 / (8 lambda^2)) below, each converging fast there.
 * 3. Probes share the data, so their tests are dependent; Holm's step-down
 *    rule (Holm 1979) controls the family-wise error at alpha under any
 *    dependence, which Benjamini–Hochberg does not guarantee in general.
 * 4. Everything runs in double; samples come in as float projections.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "derp_impl.h"
#include "qinx/rng.h"

/* ---- generator ----------------------------------------------------------- */

void qx__derp_rng_seed(qx__derp_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = qx_rng_next(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qx__derp_rng_next(qx__derp_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qx__derp_rng_uniform(qx__derp_rng *r) {
    return (double)(qx__derp_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t qx__derp_rng_below(qx__derp_rng *r, uint64_t n) {
    /* Rejection on the top of the range removes the modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do v = qx__derp_rng_next(r);
    while (v >= limit);
    return v % n;
}

/* ---- options --------------------------------------------------------------- */

void qx_derp_opts_init(qx_derp_opts *opts) {
    if (!opts) return;
    opts->probes = QX_DERP_DEFAULT_PROBES;
    opts->seed = QX_DERP_DEFAULT_SEED;
    opts->alpha = 0.05;
    opts->max_test_n = 10000;
    opts->test_codebooks = 1;
    opts->top_moved = 5;
    opts->min_effect = QX_DERP_DEFAULT_MIN_EFFECT;
}

int qx__derp_opts_check(const qx_derp_opts *in, qx_derp_opts *out) {
    if (in) *out = *in;
    else qx_derp_opts_init(out);
    if (out->probes < 1 || out->probes > QX_DERP_MAX_PROBES)
        return qx__fail(QX_EINVAL, "derp: probes=%zu, must be 1..%d", out->probes,
                        QX_DERP_MAX_PROBES);
    if (!(out->alpha > 0 && out->alpha < 1))
        return qx__fail(QX_EINVAL, "derp: alpha=%g, must be in (0, 1)", out->alpha);
    if (out->top_moved > QX_DERP_TOP_MOVED)
        return qx__fail(QX_EINVAL, "derp: top_moved=%zu, at most %d", out->top_moved,
                        QX_DERP_TOP_MOVED);
    if (!(out->min_effect >= 0 && isfinite(out->min_effect)))
        return qx__fail(QX_EINVAL, "derp: min_effect=%g, must be a number >= 0", out->min_effect);
    if (out->max_test_n != 0 && out->max_test_n < QX_DERP_MIN_SAMPLE)
        return qx__fail(QX_EINVAL, "derp: max_test_n=%zu, must be 0 or >= %d", out->max_test_n,
                        QX_DERP_MIN_SAMPLE);
    return 0;
}

/* ---- sorting and K–S kernels ----------------------------------------------------- */

/* IEEE-754 bits mapped so that unsigned order = numeric order: negatives
 * are inverted, positives get the sign bit set. */
static inline uint32_t float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float key_float(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void qx__derp_sort_floats(const float *src, size_t n, double *dst, uint32_t *tmp) {
    uint32_t *a = tmp, *b = tmp + n;
    for (size_t i = 0; i < n; i++) a[i] = float_key(src[i]);
    static const int shift[3] = {0, 11, 22};
    for (int pass = 0; pass < 3; pass++) {
        size_t count[2048] = {0};
        int sh = shift[pass];
        for (size_t i = 0; i < n; i++) count[(a[i] >> sh) & 2047u]++;
        size_t sum = 0;
        for (int k = 0; k < 2048; k++) {
            size_t c = count[k];
            count[k] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) b[count[(a[i] >> sh) & 2047u]++] = a[i];
        uint32_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++) dst[i] = key_float(a[i]);
}

static double normal_cdf(double z) { return 0.5 * erfc(-z * M_SQRT1_2); }

double qx__derp_lilliefors_sorted(const double *v, size_t n) {
    double mean = 0, ss = 0;
    for (size_t i = 0; i < n; i++) mean += v[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    double sd = sqrt(ss / (double)(n - 1));
    /* A constant sample is as far from a (non-degenerate) normal as can be;
     * the relative threshold catches a spread lost in rounding. */
    if (!(sd > 1e-12 * (fabs(mean) + 1e-300))) return 1.0;
    double D = 0, inv_n = 1.0 / (double)n;
    /* With ties the formula stays exact: the largest D+ of a tied run is at
     * its last element, the largest D- at its first. */
    for (size_t i = 0; i < n; i++) {
        double F = normal_cdf((v[i] - mean) / sd);
        double dp = (double)(i + 1) * inv_n - F, dm = F - (double)i * inv_n;
        if (dp > D) D = dp;
        if (dm > D) D = dm;
    }
    return D;
}

double qx_derp_lilliefors_pvalue(double D, size_t n) {
    if (!(D >= 0) || n < QX_DERP_MIN_SAMPLE) return NAN;
    double nn = (double)n, Kd = D, nd = nn;
    if (n > 100) {
        Kd = D * pow(nn / 100.0, 0.49);
        nd = 100.0;
    }
    double p = exp(-7.01256 * Kd * Kd * (nd + 2.78019) + 2.99587 * Kd * sqrt(nd + 2.78019) -
                   0.122119 + 0.974598 / sqrt(nd) + 1.67997 / nd);
    if (p > 0.1) {
        double Z = (sqrt(nn) - 0.01 + 0.85 / sqrt(nn)) * D, Z2 = Z * Z, Z3 = Z2 * Z,
               Z4 = Z3 * Z;
        if (Z <= 0.302) p = 1.0;
        else if (Z <= 0.5)
            p = 2.76773 - 19.828315 * Z + 80.709644 * Z2 - 138.55152 * Z3 + 81.218052 * Z4;
        else if (Z <= 0.9)
            p = -4.901232 + 40.662806 * Z - 97.490286 * Z2 + 94.029866 * Z3 - 32.355711 * Z4;
        else if (Z <= 1.31)
            p = 6.198765 - 19.558097 * Z + 23.186922 * Z2 - 12.234627 * Z3 + 2.423045 * Z4;
        else p = 0.0;
    }
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

double qx__derp_ks2_sorted(const double *a, size_t na, const double *b, size_t nb) {
    size_t i = 0, j = 0;
    double D = 0, ia = 1.0 / (double)na, ib = 1.0 / (double)nb;
    while (i < na && j < nb) {
        double x = a[i] < b[j] ? a[i] : b[j];
        /* Step over every copy of x in both samples before comparing: ties
         * across samples must not open a spurious gap. */
        while (i < na && a[i] <= x) i++;
        while (j < nb && b[j] <= x) j++;
        double diff = fabs((double)i * ia - (double)j * ib);
        if (diff > D) D = diff;
    }
    return D;
}

/* Standard deviation (n - 1 denominator; 0 for n < 2) of a sorted sample. */
static double sd_of(const double *v, size_t n) {
    if (n < 2) return 0;
    double m = 0, ss = 0;
    for (size_t i = 0; i < n; i++) m += v[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) ss += (v[i] - m) * (v[i] - m);
    return sqrt(ss / (double)(n - 1));
}

double qx__derp_w1_sorted(const double *a, size_t na, const double *b, size_t nb,
                          double *w_rel) {
    /* Walk the merged order; between consecutive distinct values x_k and
     * x_{k+1} both ECDFs are constant, so the area is |F_a - F_b| times the
     * gap. Ties are stepped over together, as in the K–S kernel. */
    size_t i = 0, j = 0;
    double W = 0, ia = 1.0 / (double)na, ib = 1.0 / (double)nb;
    double prev = a[0] < b[0] ? a[0] : b[0];
    while (i < na || j < nb) {
        double x = i == na ? b[j] : j == nb ? a[i] : a[i] < b[j] ? a[i] : b[j];
        W += fabs((double)i * ia - (double)j * ib) * (x - prev);
        while (i < na && a[i] <= x) i++;
        while (j < nb && b[j] <= x) j++;
        prev = x;
    }
    if (w_rel) {
        double s = sd_of(a, na);
        if (s == 0) s = sd_of(b, nb);
        *w_rel = s > 0 ? W / s : W == 0 ? 0 : INFINITY;
    }
    return W;
}

double qx_derp_kolmogorov_q(double lambda) {
    if (!(lambda >= 0)) return NAN;
    if (lambda < 1.18) {
        if (lambda < 1e-3) return 1.0; /* P_KS underflows to 0 here */
        double y = exp(-M_PI * M_PI / (8.0 * lambda * lambda)), sum = 0;
        for (int j = 1; j <= 8; j++) sum += pow(y, (double)((2 * j - 1) * (2 * j - 1)));
        double q = 1.0 - sqrt(2.0 * M_PI) / lambda * sum;
        return q < 0 ? 0 : q > 1 ? 1 : q;
    }
    double x = exp(-2.0 * lambda * lambda), sum = 0, sign = 1;
    for (int j = 1; j <= 8; j++, sign = -sign) sum += sign * pow(x, (double)(j * j));
    double q = 2.0 * sum;
    return q < 0 ? 0 : q > 1 ? 1 : q;
}

double qx__derp_ks2_pvalue(double D, size_t na, size_t nb) {
    double ne = (double)na * (double)nb / ((double)na + (double)nb), s = sqrt(ne);
    return qx_derp_kolmogorov_q((s + 0.12 + 0.11 / s) * D);
}

/* ---- public single tests ------------------------------------------------------- */

static int to_sorted_double(const float *x, size_t n, double **out, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return qx__fail(QX_EINVAL, "%s: value %zu is NaN or Inf", what, i);
    size_t bytes, tbytes;
    uint32_t *tmp = NULL;
    *out = NULL;
    if (!qx__mul(n, sizeof(double), &bytes) || !qx__mul(n, 2 * sizeof(uint32_t), &tbytes) ||
        !(*out = qx__malloc(bytes)) || !(tmp = qx__malloc(tbytes))) {
        qx__free(*out);
        *out = NULL;
        return qx__fail(QX_ENOMEM, "%s: %zu values", what, n);
    }
    qx__derp_sort_floats(x, n, *out, tmp);
    qx__free(tmp);
    return 0;
}

int qx_derp_lilliefors(const float *sample, size_t n, double *D, double *p) {
    if (!sample) return qx__fail(QX_EINVAL, "lilliefors: NULL sample");
    if (n < QX_DERP_MIN_SAMPLE)
        return qx__fail(QX_EINVAL, "lilliefors: n=%zu, need at least %d", n, QX_DERP_MIN_SAMPLE);
    double *v;
    int rc = to_sorted_double(sample, n, &v, "lilliefors");
    if (rc) return rc;
    double d = qx__derp_lilliefors_sorted(v, n);
    qx__free(v);
    if (D) *D = d;
    if (p) *p = qx_derp_lilliefors_pvalue(d, n);
    return 0;
}

int qx_derp_ks2(const float *a, size_t na, const float *b, size_t nb, double *D, double *p) {
    if (!a || !b) return qx__fail(QX_EINVAL, "ks2: NULL sample");
    if (na == 0 || nb == 0) return qx__fail(QX_EINVAL, "ks2: empty sample (%zu, %zu)", na, nb);
    double *va, *vb;
    int rc = to_sorted_double(a, na, &va, "ks2 first sample");
    if (rc) return rc;
    rc = to_sorted_double(b, nb, &vb, "ks2 second sample");
    if (rc) {
        qx__free(va);
        return rc;
    }
    double d = qx__derp_ks2_sorted(va, na, vb, nb);
    qx__free(va);
    qx__free(vb);
    if (D) *D = d;
    if (p) *p = qx__derp_ks2_pvalue(d, na, nb);
    return 0;
}

int qx_derp_wasserstein1(const float *a, size_t na, const float *b, size_t nb, double *w,
                         double *w_rel) {
    if (!a || !b) return qx__fail(QX_EINVAL, "wasserstein1: NULL sample");
    if (na == 0 || nb == 0)
        return qx__fail(QX_EINVAL, "wasserstein1: empty sample (%zu, %zu)", na, nb);
    double *va, *vb;
    int rc = to_sorted_double(a, na, &va, "wasserstein1 first sample");
    if (rc) return rc;
    rc = to_sorted_double(b, nb, &vb, "wasserstein1 second sample");
    if (rc) {
        qx__free(va);
        return rc;
    }
    double rel = 0, W = qx__derp_w1_sorted(va, na, vb, nb, &rel);
    qx__free(va);
    qx__free(vb);
    if (w) *w = W;
    if (w_rel) *w_rel = rel;
    return 0;
}

/* ---- Holm–Bonferroni and the family summary ------------------------------------- */

typedef struct {
    double p;
    size_t i;
} p_index;

static int cmp_p_index(const void *a, const void *b) {
    const p_index *x = a, *y = b;
    if (x->p != y->p) return (x->p > y->p) - (x->p < y->p);
    return (x->i > y->i) - (x->i < y->i); /* stable order for equal p */
}

int qx_derp_holm(const double *p, size_t P, double *adj) {
    if ((!p || !adj) && P) return qx__fail(QX_EINVAL, "holm: NULL argument");
    for (size_t i = 0; i < P; i++)
        if (!(p[i] >= 0 && p[i] <= 1))
            return qx__fail(QX_EINVAL, "holm: p[%zu]=%g is not a probability", i, p[i]);
    if (P == 0) return 0;
    size_t bytes;
    p_index *ord;
    if (!qx__mul(P, sizeof *ord, &bytes) || !(ord = qx__malloc(bytes)))
        return qx__fail(QX_ENOMEM, "holm: %zu p-values", P);
    for (size_t i = 0; i < P; i++) ord[i] = (p_index){p[i], i};
    qsort(ord, P, sizeof *ord, cmp_p_index);
    /* Step-down: the k-th smallest (0-based) is multiplied by P - k, and the
     * running maximum keeps the adjusted values monotone. */
    double run = 0;
    for (size_t k = 0; k < P; k++) {
        double v = (double)(P - k) * ord[k].p;
        if (v > 1) v = 1;
        if (v > run) run = v;
        ord[k].p = run;
    }
    for (size_t k = 0; k < P; k++) adj[ord[k].i] = ord[k].p;
    qx__free(ord);
    return 0;
}

void qx_derp_family_clear(qx_derp_family *f) {
    if (!f) return;
    qx__free(f->D);
    qx__free(f->p);
    qx__free(f->p_holm);
    qx__free(f->W);
    memset(f, 0, sizeof *f);
}

int qx__derp_family_alloc(qx_derp_family *f, size_t P, double alpha) {
    memset(f, 0, sizeof *f);
    f->P = P;
    f->alpha = alpha;
    f->D = qx__calloc(P, sizeof(double));
    f->p = qx__calloc(P, sizeof(double));
    f->p_holm = qx__calloc(P, sizeof(double));
    if (!f->D || !f->p || !f->p_holm) {
        qx_derp_family_clear(f);
        return qx__fail(QX_ENOMEM, "derp: results for %zu probes", P);
    }
    return 0;
}

int qx__derp_family_finish(qx_derp_family *f) {
    int rc = qx_derp_holm(f->p, f->P, f->p_holm);
    if (rc) return rc;
    f->significant = f->rejected = f->holm_rejected = 0;
    f->p_combined = 1.0;
    f->D_max = f->D_mean = f->W_max = f->W_mean = 0;
    for (size_t i = 0; i < f->P; i++) {
        int sig = f->p[i] <= f->alpha;
        f->significant += sig;
        /* NaN W (cannot happen for finite samples) does not reach the bar. */
        if (sig && (!f->W || f->W[i] >= f->min_effect)) f->rejected++;
        if (f->W) {
            if (f->W[i] > f->W_max) f->W_max = f->W[i];
            f->W_mean += f->W[i];
        }
        if (f->p_holm[i] <= f->alpha) f->holm_rejected++;
        if (f->p_holm[i] < f->p_combined) f->p_combined = f->p_holm[i];
        if (f->D[i] > f->D_max) f->D_max = f->D[i];
        f->D_mean += f->D[i];
    }
    if (f->P) {
        f->D_mean /= (double)f->P;
        f->W_mean /= (double)f->P;
        f->rejected_fraction = (double)f->rejected / (double)f->P;
    }
    f->reject = f->p_combined <= f->alpha;
    return 0;
}
