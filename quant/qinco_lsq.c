/* quant/qinco_lsq.c — additive codebooks for look-up-table search over
 * QINCo-style codes: M×256 vectors a_mk with Σ_m a_{m,code_m} ≈ x̂ (the exact
 * neural decoding) in least squares over a training set (the approximate
 * decoder of QINCo, arXiv 2401.14732 §4.2, "AQ decoder").
 *
 * With B the n × MK one-hot code matrix, the normal equations are
 *   (BᵀB + λI) A = BᵀX̂ + λA0,
 * a ridge towards the starting codebooks A0 (the RQ's), so a codeword that no
 * fit vector uses keeps its RQ value instead of collapsing to 0.
 * Decisions:
 * 1. Solved matrix-free with Jacobi-preconditioned conjugate gradients, one
 *    CG per output dimension run side by side: BᵀB is never formed (it would
 *    be (MK)² floats, 1 GB at M = 64), a product costs 2·n·M·d.
 * 2. The diagonal of BᵀB is the codeword counts, an exact and cheap
 *    preconditioner; the directions BᵀB leaves null (shifting one step's
 *    codewords against another's) do not change B·A and are held by λ.
 * 3. Arithmetic in double; Bᵀ· is parallel over steps (each step's rows are
 *    owned by one thread, summed in vector order), so it is deterministic.
 */
#include <math.h>
#include <string.h>

#include "qinco_impl.h"

#define QX__CG_ITERS 100
#define QX__CG_TOL 1e-6

typedef struct sys {
    const uint8_t *codes;
    size_t n, M, d, rows; /* rows = M*K */
    double lambda;
    double *P;            /* n × d scratch */
    int T;
} sys;

/* out = (BᵀB + λI) v */
static void apply(const sys *s, const double *v, double *out) {
    size_t n = s->n, M = s->M, d = s->d, K = QX__QK;
#pragma omp parallel for num_threads(s->T) schedule(static)
    for (size_t i = 0; i < n; i++) {
        double *p = s->P + i * d;
        memset(p, 0, d * sizeof(double));
        for (size_t m = 0; m < M; m++) {
            const double *a = v + (m * K + s->codes[i * M + m]) * d;
            for (size_t j = 0; j < d; j++) p[j] += a[j];
        }
    }
#pragma omp parallel for num_threads(s->T) schedule(static)
    for (size_t m = 0; m < M; m++) {
        double *o = out + m * K * d;
        const double *vm = v + m * K * d;
        for (size_t t = 0; t < K * d; t++) o[t] = s->lambda * vm[t];
        for (size_t i = 0; i < n; i++) {
            double *row = o + (size_t)s->codes[i * M + m] * d;
            const double *p = s->P + i * d;
            for (size_t j = 0; j < d; j++) row[j] += p[j];
        }
    }
}

int qx__qinco_fit_additive(const uint8_t *codes, size_t n, size_t M, const float *target,
                           size_t d, int threads, float *a) {
    size_t K = QX__QK, rows = M * K, nv = rows * d, f = sizeof(double);
    sys s = {codes, n, M, d, rows, 0, NULL, threads > 0 ? threads : 1};
    double *A = qx__aligned_alloc(nv * f), *R = qx__aligned_alloc(nv * f);
    double *Z = qx__aligned_alloc(nv * f), *Pd = qx__aligned_alloc(nv * f);
    double *Q = qx__aligned_alloc(nv * f), *diag = qx__aligned_alloc(rows * f);
    double *rz = qx__aligned_alloc(4 * d * f), *bn = rz + d, *alpha = rz + 2 * d, *tmp = rz + 3 * d;
    s.P = qx__aligned_alloc(n * d * f);
    int rc = 0;
    if (!A || !R || !Z || !Pd || !Q || !diag || !rz || !s.P) {
        rc = qx__fail(QX_ENOMEM, "qinco: additive codebook fit (%zu codewords × %zu)", rows, d);
        goto done;
    }
    memset(diag, 0, rows * f);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < M; m++) diag[m * K + codes[i * M + m]] += 1;
    /* λ: a small fraction of the mean count, so used codewords are fitted,
     * not shrunk. */
    s.lambda = 1e-3 * (double)n / (double)K + 1e-9;
    for (size_t r = 0; r < rows; r++) diag[r] += s.lambda;
    for (size_t t = 0; t < nv; t++) A[t] = a[t];
    /* rhs = BᵀX̂ + λA0, kept in Z for now. */
    memset(Z, 0, nv * f);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < M; m++) {
            double *row = Z + (m * K + codes[i * M + m]) * d;
            const float *x = target + i * d;
            for (size_t j = 0; j < d; j++) row[j] += x[j];
        }
    for (size_t t = 0; t < nv; t++) Z[t] += s.lambda * A[t];
    memset(bn, 0, d * f);
    for (size_t t = 0; t < nv; t++) bn[t % d] += Z[t] * Z[t];
    apply(&s, A, Q);
    for (size_t t = 0; t < nv; t++) R[t] = Z[t] - Q[t];
    memset(rz, 0, d * f);
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < d; j++) {
            size_t t = r * d + j;
            Z[t] = R[t] / diag[r];
            Pd[t] = Z[t];
            rz[j] += R[t] * Z[t];
        }
    for (int it = 0; it < QX__CG_ITERS; it++) {
        apply(&s, Pd, Q);
        memset(alpha, 0, d * f);
        for (size_t t = 0; t < nv; t++) alpha[t % d] += Pd[t] * Q[t];
        for (size_t j = 0; j < d; j++) alpha[j] = alpha[j] > 0 ? rz[j] / alpha[j] : 0;
        memset(tmp, 0, d * f);
        for (size_t t = 0; t < nv; t++) {
            size_t j = t % d;
            A[t] += alpha[j] * Pd[t];
            R[t] -= alpha[j] * Q[t];
            tmp[j] += R[t] * R[t];
        }
        double worst = 0;
        for (size_t j = 0; j < d; j++) {
            double rel = bn[j] > 0 ? tmp[j] / bn[j] : 0;
            worst = rel > worst ? rel : worst;
        }
        if (worst < QX__CG_TOL * QX__CG_TOL) break;
        memset(tmp, 0, d * f);
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < d; j++) {
                size_t t = r * d + j;
                Z[t] = R[t] / diag[r];
                tmp[j] += R[t] * Z[t];
            }
        for (size_t j = 0; j < d; j++) {
            double beta = rz[j] > 0 ? tmp[j] / rz[j] : 0;
            rz[j] = tmp[j];
            alpha[j] = beta;
        }
        for (size_t t = 0; t < nv; t++) Pd[t] = Z[t] + alpha[t % d] * Pd[t];
    }
    for (size_t t = 0; t < nv; t++) {
        if (!isfinite(A[t])) {
            rc = qx__fail(QX_EINTERNAL, "qinco: additive codebook fit diverged");
            goto done;
        }
    }
    for (size_t t = 0; t < nv; t++) a[t] = (float)A[t];
done:
    qx__aligned_free(A);
    qx__aligned_free(R);
    qx__aligned_free(Z);
    qx__aligned_free(Pd);
    qx__aligned_free(Q);
    qx__aligned_free(diag);
    qx__aligned_free(rz);
    qx__aligned_free(s.P);
    return rc;
}
