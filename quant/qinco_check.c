/* quant/qinco_check.c — what the QINCo trainer measures about itself: the
 * held-out recall@1 of the never-worse-than-RQ check, this machine's sgemm
 * rate, and the matrix FLOPs its encoder, decoder and training pass do, so
 * that an epoch's achieved GFLOP/s can be set against that rate.
 *
 * Decisions:
 * 1. Recall@1 is the search-quality figure the issue names: held-out vectors
 *    are the queries, training vectors the base; the true neighbour is found
 *    by exact distance among the raw base vectors, the answer by distance to
 *    their reconstructions (an exhaustive search over decoded codes, as a
 *    re-ranked shortlist would see them). Ties go to the lower index in both.
 * 2. FLOPs are counted from the shapes of the matrix products only (2·m·n·k
 *    per sgemm); element-wise work (ReLU, gathers, candidate errors, Adam) is
 *    not counted, so achieved GFLOP/s is a lower bound of the work done.
 * 3. The sgemm rate is a square 1024³ product, best of five after a 0.1 s pause, with OpenBLAS's
 *    own threads: what this machine's BLAS delivers at the moment the run
 *    starts (on a shared machine, a share of it).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "qinco_impl.h"

#define QX__RECALL_BLOCK 4096

double qx__cpu_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* For each query, the index of the nearest of nb rows (||y||² − 2<q,y>). */
static int nearest(const float *queries, size_t nq, const float *y, size_t nb, size_t d,
                   size_t *best) {
    size_t bl = nb < QX__RECALL_BLOCK ? nb : QX__RECALL_BLOCK;
    float *ip = qx__aligned_alloc(sizeof(float) * nq * bl), *nrm = qx__aligned_alloc(sizeof(float) * bl);
    float *bd = qx__aligned_alloc(sizeof(float) * nq);
    if (!ip || !nrm || !bd) {
        qx__aligned_free(ip);
        qx__aligned_free(nrm);
        qx__aligned_free(bd);
        return qx__fail(QX_ENOMEM, "qinco: recall check buffers (%zu queries)", nq);
    }
    for (size_t i = 0; i < nq; i++) bd[i] = INFINITY, best[i] = 0;
    for (size_t b0 = 0; b0 < nb; b0 += bl) {
        size_t nbk = nb - b0 < bl ? nb - b0 : bl;
        for (size_t j = 0; j < nbk; j++) {
            double s = 0;
            for (size_t t = 0; t < d; t++) s += (double)y[(b0 + j) * d + t] * y[(b0 + j) * d + t];
            nrm[j] = (float)s;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nbk, (int)d, -2.0f,
                    queries, (int)d, y + b0 * d, (int)d, 0.0f, ip, (int)nbk);
        for (size_t i = 0; i < nq; i++)
            for (size_t j = 0; j < nbk; j++) {
                float v = ip[i * nbk + j] + nrm[j];
                if (v < bd[i]) bd[i] = v, best[i] = b0 + j;
            }
    }
    qx__aligned_free(ip);
    qx__aligned_free(nrm);
    qx__aligned_free(bd);
    return 0;
}

int qx__qinco_recall1(const float *queries, size_t nq, const float *base, const float *rec,
                      size_t nb, size_t d, double *recall) {
    *recall = 0;
    if (nq == 0 || nb == 0) return 0;
    size_t *t = qx__malloc(sizeof(size_t) * nq), *a = qx__malloc(sizeof(size_t) * nq);
    int rc = t && a ? 0 : qx__fail(QX_ENOMEM, "qinco: recall check (%zu queries)", nq);
    if (rc == 0) rc = nearest(queries, nq, base, nb, d, t);
    if (rc == 0) rc = nearest(queries, nq, rec, nb, d, a);
    if (rc == 0) {
        size_t hit = 0;
        for (size_t i = 0; i < nq; i++) hit += t[i] == a[i];
        *recall = (double)hit / (double)nq;
    }
    qx__free(t);
    qx__free(a);
    return rc;
}

double qx__qinco_sgemm_rate(void) {
    const int n = 1024;
    size_t nn = (size_t)n * n;
    float *a = qx__aligned_alloc(sizeof(float) * nn), *b = qx__aligned_alloc(sizeof(float) * nn);
    float *c = qx__aligned_alloc(sizeof(float) * nn);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
            b[i] = (float)((i * 40503u) % 997) * 1e-3f;
        }
        /* Idle OpenMP workers of the caller's last parallel region spin for
         * a while before they sleep, on the cores sgemm needs: after the RQ's
         * training a `qinx build` measured 96 GFLOP/s here, one core's rate,
         * where 190 is the 2-core rate. Let them settle, take the best of 5. */
        struct timespec nap = {0, 100 * 1000 * 1000};
        nanosleep(&nap, NULL);
        for (int r = 0; r < 5; r++) {
            double t0 = qx__now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                        c, n);
            double dt = qx__now() - t0, g = dt > 0 ? 2.0 * n * n * (double)n / dt * 1e-9 : 0;
            if (g > best) best = g;
        }
    }
    qx__aligned_free(a);
    qx__aligned_free(b);
    qx__aligned_free(c);
    return best;
}

/* Per candidate row after the first block's W1 (which the tables hold):
 * the first W2, then W1 and W2 of each later block. */
static double per_candidate(const qx__qinco *q) {
    double d = (double)q->d, h = (double)q->h;
    return q->L ? 2 * h * d + (double)(q->L - 1) * 4 * h * d : 0;
}

double qx__qinco_flops_encode(const qx__qinco *q, int B, int A) {
    double d = (double)q->d, h = (double)q->h, K = QX__QK;
    double per_entry = 2 * K * d + 2 * d * d + (q->L ? 2 * d * h : 0);
    return 2 * K * d + (double)(q->M - 1) * ((double)B * per_entry + (double)B * A * per_candidate(q));
}

double qx__qinco_flops_decode(const qx__qinco *q) {
    double d = (double)q->d, h = (double)q->h;
    return (double)(q->M - 1) * (2 * d * d + (q->L ? 2 * d * h : 0) + per_candidate(q));
}

double qx__qinco_flops_train_row(const qx__qinco *q) {
    double d = (double)q->d, h = (double)q->h;
    /* forward: concat 4d², blocks 4hd each; backward: concat 8d², blocks 8hd each */
    return (double)(q->M - 1) * (12 * d * d + 12 * (double)q->L * h * d);
}
