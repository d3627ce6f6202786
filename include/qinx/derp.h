/* qinx/derp.h — DERP: distribution enforcement via random probes (statistics).
 *
 * A random probe is a seeded unit direction u in R^d; a set of vectors is
 * reduced to the 1-D sample {<u, v>}. On those samples DERP runs
 *   - the one-sample Kolmogorov–Smirnov test against a normal with the
 *     sample's own mean and variance (Lilliefors; p-value from Dallal &
 *     Wilkinson 1986, above 0.1 from Stephens' 1974 modified statistic), and
 *   - the two-sample Kolmogorov–Smirnov test (p-value from the Kolmogorov
 *     distribution Q_KS with effective n = n1 n2 / (n1 + n2) and the
 *     small-sample correction lambda = (sqrt(ne) + 0.12 + 0.11/sqrt(ne)) D).
 * P probes (default 64) are combined with the Holm–Bonferroni rule at family
 * level alpha, which is valid whatever the dependence between probes.
 *
 * On top of the statistics: per-step codebook health of any qx_quantizer
 * (usage, perplexity, dead codewords, MSE drop, normality of the residuals
 * on random probes), drift between a reference sample (a reservoir kept at
 * training time) and new vectors, and a JSON report with a list of
 * pass/fail checks for the rebuild gate. docs/derp.md explains how to read
 * every number.
 *
 * Concurrency: every function here is reentrant. Functions taking a const
 * pointer may run concurrently on the same object; functions taking a
 * non-const object (reservoir add, report setters, *_clear/_free) need
 * exclusive access to that object. The library takes no locks.
 * Results (families, health, drift, JSON strings) are owned by the caller
 * and freed with the matching _clear/_free (or qx_free for strings).
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_DERP_H
#define QINX_DERP_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

#include "qinx/quantizer.h"

QX_BEGIN_DECLS

#define QX_DERP_DEFAULT_PROBES 64
#define QX_DERP_MAX_PROBES 4096
#define QX_DERP_DEFAULT_SEED 0xDE4Bull
#define QX_DERP_DEFAULT_RESERVOIR 10000
#define QX_DERP_MAX_RESERVOIR (1u << 24)
#define QX_DERP_MIN_SAMPLE 5     /* the one-sample test needs n >= 5 */
#define QX_DERP_TOP_MOVED 8      /* at most this many "probes that moved most" */
#define QX_DERP_REPORT_VERSION 2 /* "version" key of the JSON report (2: effect
                                    sizes, per-check policy and outcome) */
#define QX_DERP_DEFAULT_MIN_EFFECT 0.05 /* see qx_derp_opts.min_effect */

/* ---- options ----------------------------------------------------------- */

typedef struct qx_derp_opts {
    size_t probes;      /* P: random probes, 1..QX_DERP_MAX_PROBES (default 64) */
    uint64_t seed;      /* probe seed (default QX_DERP_DEFAULT_SEED); the same
                           seed and d give the same probes on every platform */
    double alpha;       /* family-wise level, in (0, 1) (default 0.05) */
    size_t max_test_n;  /* at most this many vectors enter a K–S test (a
                           deterministic evenly-strided subsample); 0 = all.
                           Default 10000: with n in the 10^5 range K–S detects
                           departures far too small to matter. Usage counts
                           and MSE always use every vector. */
    int test_codebooks; /* health: also test the 256 codewords of each step
                           for normality (default 1) */
    size_t top_moved;   /* drift: probes listed as "moved most",
                           0..QX_DERP_TOP_MOVED (default 5) */
    double min_effect;  /* two-sample tests: a probe counts as rejected only
                           if it is significant (raw p <= alpha) AND its
                           effect W (1-D Wasserstein distance in units of the
                           reference sample's standard deviation on that
                           probe) is >= min_effect. 0 = significance alone.
                           Default QX_DERP_DEFAULT_MIN_EFFECT (0.05 sd),
                           calibrated in docs/derp.md. */
} qx_derp_opts;

/* Fill defaults. */
void qx_derp_opts_init(qx_derp_opts *opts);

/* ---- random probes and projections --------------------------------------- */

/* Fill probes (P*d floats, caller-allocated, row p = probe p) with unit
 * vectors drawn uniformly on the sphere: Gaussian coordinates from a
 * splitmix64-seeded xoshiro256** generator through Box–Muller, then
 * normalised. Deterministic for (P, d, seed); probe p does not depend on P
 * (the first P probes of a larger set are the same). d in 1..QX_MAX_DIM,
 * P in 1..QX_DERP_MAX_PROBES. */
int qx_derp_probes_make(size_t P, size_t d, uint64_t seed, float *probes);

/* proj[p*n + i] = <probes_p, x_i> for n d-vectors x (row-major) and P probes:
 * one cblas_sgemm. proj is P*n floats, caller-allocated, probe-major so that
 * each probe's sample is contiguous. Rejects NaN/Inf in x. */
int qx_derp_project(const float *x, size_t n, size_t d, const float *probes, size_t P,
                    float *proj);

/* ---- single tests ------------------------------------------------------- */

/* Lilliefors test of one sample (n >= QX_DERP_MIN_SAMPLE floats): D is the
 * K–S distance between the empirical CDF and N(mean, sd^2) with the sample's
 * own mean and (n-1) standard deviation; p from Dallal–Wilkinson (1986),
 * replaced by Stephens' (1974) modified-statistic fit when above 0.1 (the
 * method of R's nortest::lillie.test). A constant sample (sd = 0) has
 * D = 1, p = 0: degenerate, hence not normal. D or p may be NULL. */
int qx_derp_lilliefors(const float *sample, size_t n, double *D, double *p);

/* The Lilliefors p-value of a statistic D at sample size n (n >= 5). */
double qx_derp_lilliefors_pvalue(double D, size_t n);

/* Two-sample K–S test between a (na >= 1) and b (nb >= 1): D = sup |F_a - F_b|
 * (ties handled exactly), p = Q_KS((sqrt(ne) + 0.12 + 0.11/sqrt(ne)) D) with
 * ne = na nb / (na + nb) (Numerical Recipes 14.3, after Stephens 1970).
 * D or p may be NULL. */
int qx_derp_ks2(const float *a, size_t na, const float *b, size_t nb, double *D, double *p);

/* 1-D Wasserstein distance W1 = integral |F_a(x) - F_b(x)| dx between the
 * empirical distributions of a (na >= 1) and b (nb >= 1), in the samples'
 * units (*w), and relative to the standard deviation of a (*w_rel; the
 * reference's spread, so that W1 between N(0, 1) and N(delta, 1) samples is
 * about delta in both). When a is constant the spread of b is used; when
 * both are constant *w_rel is 0 if they are equal, else +Inf. w or w_rel may
 * be NULL. */
int qx_derp_wasserstein1(const float *a, size_t na, const float *b, size_t nb, double *w,
                         double *w_rel);

/* The Kolmogorov survival function Q_KS(lambda) = 2 sum_{j>=1} (-1)^{j-1}
 * exp(-2 j^2 lambda^2), accurate to ~1e-12 for every lambda >= 0 (the
 * complementary series is used for small lambda). */
double qx_derp_kolmogorov_q(double lambda);

/* Holm–Bonferroni step-down adjusted p-values: adj[i] for p[i], i < P
 * (adj may alias p). A hypothesis is rejected at family level alpha iff
 * adj[i] <= alpha. Returns 0 or QX_EINVAL (NaN p, NULL). */
int qx_derp_holm(const double *p, size_t P, double *adj);

/* ---- a family of P probe tests ---------------------------------------------- */

/* The result of one test run on every probe. Arrays have P entries and are
 * owned by the struct (qx_derp_family_clear). */
typedef struct qx_derp_family {
    size_t P;            /* probes */
    size_t n;            /* sample size per probe actually tested (after
                            max_test_n); for two-sample tests, n of the
                            second set (n_ref holds the first) */
    size_t n_ref;        /* two-sample: size of the reference sample; else 0 */
    double alpha;        /* level used */
    double *D;           /* per-probe K–S statistic */
    double *p;           /* per-probe raw p-value */
    double *p_holm;      /* per-probe Holm-adjusted p-value */
    double *W;           /* two-sample only (else NULL): per-probe effect,
                            W1 / sd of the reference on that probe */
    double min_effect;   /* two-sample: the effect a rejection needs (opts) */
    size_t significant;  /* probes with raw p <= alpha (expected ~ alpha*P
                            under the null hypothesis) */
    size_t rejected;     /* one-sample: = significant. Two-sample: probes
                            with raw p <= alpha AND W >= min_effect */
    double rejected_fraction; /* rejected / P */
    size_t holm_rejected;     /* probes with p_holm <= alpha */
    double p_combined;   /* family p-value: min over probes of p_holm
                            (= min(1, P * min p)) */
    int reject;          /* 1 iff p_combined <= alpha (at least one probe
                            rejected by Holm), family-wise error <= alpha */
    double D_max, D_mean;/* effect sizes: largest and mean D over probes */
    double W_max, W_mean;/* two-sample: largest and mean W over probes (0
                            for one-sample families) */
} qx_derp_family;

/* Release the arrays and zero the struct (NULL-safe, idempotent). */
void qx_derp_family_clear(qx_derp_family *f);

/* One-sample Lilliefors test of n d-vectors x on opts->probes probes (seeded
 * by opts->seed; opts NULL = defaults). n >= QX_DERP_MIN_SAMPLE.
 * *out is overwritten (clear it first if it held a result). */
int qx_derp_normality(const float *x, size_t n, size_t d, const qx_derp_opts *opts,
                      qx_derp_family *out);

/* Two-sample K–S test of a (na d-vectors, the reference) against b (nb
 * d-vectors) on the same probes, with the effect W per probe (see
 * qx_derp_wasserstein1; relative to a's spread). na, nb >= 1 (each capped
 * at opts->max_test_n). */
int qx_derp_two_sample(const float *a, size_t na, const float *b, size_t nb, size_t d,
                       const qx_derp_opts *opts, qx_derp_family *out);

/* ---- codebook health per step ----------------------------------------------- */

typedef struct qx_derp_step {
    size_t step;          /* m, 0-based */
    size_t ksub;          /* codewords per step: 256, or 16 for a byte that holds
                             two 4-bit steps (the first bytes of a fast-scan
                             code), whose usage figures are those of the worse
                             of its two steps */
    size_t used;          /* codewords chosen by at least one vector (0..ksub) */
    double used_fraction; /* used / ksub */
    double perplexity;    /* exp(H) / ksub, H = entropy (nats) of the usage
                             histogram; 1 = uniform usage, 1/ksub = one codeword */
    size_t dead;          /* ksub - used */
    double mse;           /* mean ||x - decode(code, m+1 steps)||^2 */
    double mse_drop;      /* MSE after m steps minus MSE after m+1 steps
                             (step 0: mean ||x||^2 minus mse) */
    qx_derp_family residual; /* normality of x - decode(code, m+1 steps) on
                                min(n, max_test_n) vectors; an all-zero
                                residual (exact reconstruction) counts as
                                degenerate: D = 1 */
    qx_derp_family codebook; /* normality of the step's 256 additive codewords
                                (P == 0 when not tested: opts.test_codebooks
                                = 0 or no additive codebooks). n = 256 is
                                small: a weak test, report only. Tied
                                (collapsed) codewords make it reject. */
} qx_derp_step;

typedef struct qx_derp_health {
    size_t n, d, M;       /* vectors, dimension, steps */
    qx_quant_kind kind;
    double mse0;          /* mean ||x||^2: the MSE with zero steps */
    qx_derp_step *steps;  /* M entries */
} qx_derp_health;

/* Health of a trained quantizer on n vectors x (n*d floats, d = the
 * quantizer's dimension, n >= QX_DERP_MIN_SAMPLE). codes (n*M bytes) may be
 * given to skip encoding (e.g. the codes an index already stores for x); NULL
 * encodes x here. Residual normality uses at most opts->max_test_n vectors.
 * *out is allocated; free with qx_derp_health_free. q is only read: may run
 * concurrently with other const calls on q. */
int qx_derp_health_compute(const qx_quantizer *q, const float *x, size_t n,
                           const uint8_t *codes, const qx_derp_opts *opts,
                           qx_derp_health **out);
/* The same for a quantizer that uses contexts (qx_quantizer_uses_context:
 * in an IVF, x are residuals and ctx their list centroids, n*d floats):
 * encoded and decoded with them. ctx NULL is qx_derp_health_compute. */
int qx_derp_health_compute_ctx(const qx_quantizer *q, const float *x, const float *ctx, size_t n,
                               const uint8_t *codes, const qx_derp_opts *opts,
                               qx_derp_health **out);
void qx_derp_health_free(qx_derp_health *h); /* NULL-safe */

/* The worst value over steps of each health number, for gate thresholds. */
typedef struct qx_derp_health_summary {
    double min_used_fraction;   /* smallest used_fraction over steps */
    size_t min_used_step;       /* … at this step */
    double min_perplexity;      /* smallest perplexity over steps */
    size_t min_perplexity_step;
    size_t max_dead;            /* largest dead count over steps */
    double min_mse_drop_ratio;  /* smallest mse_drop / (MSE before the step):
                                   the relative gain of the weakest step */
    size_t min_mse_drop_step;
    double max_residual_rejected_fraction; /* over steps */
    double max_residual_D_mean;            /* over steps */
    double mse;                 /* MSE with all M steps */
    double relative_mse;        /* mse / mse0 (0 when mse0 = 0) */
} qx_derp_health_summary;

/* Fill *s from h (M >= 1). */
int qx_derp_health_summarize(const qx_derp_health *h, qx_derp_health_summary *s);

/* ---- drift ----------------------------------------------------------------- */

typedef struct qx_derp_drift {
    qx_derp_family test;  /* two-sample K–S per probe: reference vs new */
    double score;         /* drift score = test.D_max (0 = identical
                             projections, 1 = disjoint) */
    double score_mean;    /* test.D_mean */
    double effect;        /* test.W_max: largest Wasserstein effect (in
                             reference standard deviations) over probes */
    double effect_mean;   /* test.W_mean */
    size_t ntop;          /* entries of top[] */
    size_t top[QX_DERP_TOP_MOVED]; /* probe indices by decreasing D */
} qx_derp_drift;

/* Drift between a reference sample ref (nref d-vectors, e.g. a reservoir of
 * the training vectors) and x (n d-vectors): the two-sample test on every
 * probe, the score and the probes that moved most. */
int qx_derp_drift_compute(const float *ref, size_t nref, const float *x, size_t n, size_t d,
                          const qx_derp_opts *opts, qx_derp_drift *out);
void qx_derp_drift_clear(qx_derp_drift *dr); /* NULL-safe */

/* ---- reservoir sample of training vectors ------------------------------------ */

/* Algorithm R (Vitter 1985): after any number of adds, the reservoir holds a
 * uniform random sample of min(seen, capacity) of the vectors seen, chosen by
 * a generator seeded at creation, so the same adds give the same sample. */
typedef struct qx_derp_reservoir qx_derp_reservoir;

/* capacity 1..QX_DERP_MAX_RESERVOIR (0 = QX_DERP_DEFAULT_RESERVOIR). */
int qx_derp_reservoir_new(qx_derp_reservoir **out, size_t d, size_t capacity, uint64_t seed);
void qx_derp_reservoir_free(qx_derp_reservoir *r); /* NULL-safe */
/* Offer n vectors (n*d floats; NaN/Inf rejected before anything changes). */
int qx_derp_reservoir_add(qx_derp_reservoir *r, const float *x, size_t n);
size_t qx_derp_reservoir_size(const qx_derp_reservoir *r);     /* vectors held */
size_t qx_derp_reservoir_dim(const qx_derp_reservoir *r);
uint64_t qx_derp_reservoir_seen(const qx_derp_reservoir *r);   /* vectors offered */
/* size*d floats, valid until the next add/free. */
const float *qx_derp_reservoir_data(const qx_derp_reservoir *r);
/* Blob "QXRV": version, d, capacity, size, seen, generator state, vectors
 * (little-endian); *buf freed with qx_free. Deserialize validates every
 * field, so adds continue exactly where the saved reservoir stopped. */
int qx_derp_reservoir_serialize(const qx_derp_reservoir *r, uint8_t **buf, size_t *len);
int qx_derp_reservoir_deserialize(const uint8_t *buf, size_t len, qx_derp_reservoir **out);

/* ---- report (JSON) and gate checks ------------------------------------------- */

typedef struct qx_derp_report qx_derp_report;

/* How a check's value is compared with its threshold to pass. */
typedef enum qx_derp_cmp {
    QX_DERP_LE = 0, /* pass iff value <= threshold */
    QX_DERP_GE = 1, /* pass iff value >= threshold */
    QX_DERP_LT = 2, /* pass iff value <  threshold */
    QX_DERP_GT = 3  /* pass iff value >  threshold */
} qx_derp_cmp;

/* What a failed check does to the verdict. */
typedef enum qx_derp_policy {
    QX_DERP_BLOCK = 0, /* a failure fails the report (the default) */
    QX_DERP_WARN = 1   /* a failure is a warning while every BLOCK check
                          passes; if a BLOCK check fails too, it counts as a
                          failure (outcome "fail") */
} qx_derp_policy;

/* A new empty report; opts (NULL = defaults) fills "probes", "alpha",
 * "seed". */
int qx_derp_report_new(qx_derp_report **out, const qx_derp_opts *opts);
void qx_derp_report_free(qx_derp_report *r); /* NULL-safe */

/* Record the health / drift results (rendered at once: the report keeps no
 * pointer to h or dr). Calling again replaces the previous one. */
int qx_derp_report_set_health(qx_derp_report *r, const qx_derp_health *h);
int qx_derp_report_set_drift(qx_derp_report *r, const qx_derp_drift *dr);

/* A string entry of the "meta" object (e.g. "index" -> path, "stage" ->
 * "candidate"); key and value are copied; a key set twice keeps the last. */
int qx_derp_report_set_meta(qx_derp_report *r, const char *key, const char *value);

/* Append a check {"name","value","threshold","cmp","pass"}; pass is
 * computed from cmp (a NaN value never passes) and stored in *pass (may be
 * NULL). name: 1..127 printable characters; threshold not NaN.
 * Fail-safe: if the check cannot be recorded (bad argument, out of memory)
 * the call returns the error, *pass = 0, and the report is marked
 * incomplete: qx_derp_report_passed returns 0 from then on and the JSON
 * says "complete": false, "pass": false — so a caller that ignores the
 * return code still does not publish. */
int qx_derp_report_add_check(qx_derp_report *r, const char *name, double value,
                             double threshold, qx_derp_cmp cmp, int *pass);

/* The policy of the checks named name, added before or after this call
 * (a name set twice keeps the last). Names as for add_check. */
int qx_derp_report_set_policy(qx_derp_report *r, const char *name, qx_derp_policy policy);

/* Outcome of check i (0 <= i < num_checks): 0 pass, 1 warn, -1 fail
 * (policy applied: see qx_derp_policy). Name in *name (may be NULL). */
int qx_derp_report_check_outcome(const qx_derp_report *r, size_t i, const char **name);

/* Checks whose outcome is warn. */
size_t qx_derp_report_num_warnings(const qx_derp_report *r);

/* Thresholds of the standard DERP checks (the gate's config file maps onto
 * this struct). A NaN threshold turns its check off. Defaults (from the
 * siftsmall measurements in docs/derp.md): */
typedef struct qx_derp_thresholds {
    double min_used_fraction;           /* 0.3: healthy RQ 0.45-1.0, 90% collapse 0.125 */
    double min_perplexity;              /* 0.05: healthy >= 0.2, collapse 0.03 */
    double max_drift_rejected_fraction; /* 0.25: fraction of probes that are
                                           significant and moved by at least
                                           opts.min_effect; null ~ 0, shifted 1.0 */
    double max_drift_score;             /* NaN (off): max D over probes */
} qx_derp_thresholds;

void qx_derp_thresholds_init(qx_derp_thresholds *t);

/* Add the standard checks, named as below, to r:
 *   from h (may be NULL):  "min_used_fraction" (>=), "min_perplexity" (>=),
 *                          each the worst step (qx_derp_health_summarize);
 *   from dr (may be NULL): "max_drift_rejected_fraction" (<=),
 *                          "max_drift_score" (<=).
 * t NULL = defaults. *all_pass (may be NULL) = every added check passed. */
int qx_derp_report_add_standard_checks(qx_derp_report *r, const qx_derp_health *h,
                                       const qx_derp_drift *dr, const qx_derp_thresholds *t,
                                       int *all_pass);

/* 1 if every BLOCK check passed (also when there are none) and none was
 * lost, else 0. WARN checks that failed are warnings then. */
int qx_derp_report_passed(const qx_derp_report *r);
size_t qx_derp_report_num_checks(const qx_derp_report *r);

/* The report as a JSON object (UTF-8, NUL-terminated, keys in docs/derp.md);
 * *json freed with qx_free; len (may be NULL) receives strlen. Non-finite
 * numbers are written as null. */
int qx_derp_report_json(const qx_derp_report *r, char **json, size_t *len);

QX_END_DECLS
#endif
