/* quant/rq_train.c — RQ training: per-step k-means on beam residuals, dead
 * codeword re-seeding, and joint least-squares codebook refinement.
 *
 * Follows FAISS's ResidualQuantizer::train (Chen, Guan & Wang, "Approximate
 * nearest neighbor search by residual vector quantization", Sensors 2010;
 * beam training as in Martinez et al., LSQ++ / FAISS):
 * 1. Every training vector keeps a beam of up to `train_beam` partial
 *    encodings with their explicit residuals. Step m runs k-means (256
 *    centroids) on the residuals of ALL beam entries, then extends each beam:
 *    the 256 * nb candidate distances ||r||² − 2<r,c> + ||c||² come from one
 *    sgemm per block of residual rows (outside OpenMP regions, see
 *    rq_encode.c), the best `train_beam` survive.
 * 2. Dead codewords (no vector's best encoding uses them after the beam
 *    step) are re-seeded, when reseed_dead is on, with the residual entering
 *    step m of the worst-encoded vectors, and the step is re-run once: the
 *    anchor idea of CVQ-VAE (Zheng & Vedaldi, ICCV 2023) applied to RQ.
 * 3. Refinement: given the codes, the codebooks C (M*256 x d) minimising
 *    ||X − B C||² solve the normal equations (BᵀB) C = BᵀX, B the one-hot code
 *    matrix. BᵀB is singular (adding v to every codeword of one step and
 *    subtracting it from another changes nothing) and has zero rows for dead
 *    codewords, so we solve the ridge system (BᵀB + λI) C = BᵀX + λ C_old
 *    (λ = 1e-2, pulling the null space towards the current codebooks) by
 *    Jacobi-preconditioned conjugate gradients. BᵀB is never formed: B·P is a
 *    decode and Bᵀ·Y a scatter-add, O(n·M·d) per iteration, instead of the
 *    (M·256)² Gram and an O((M·256)³) factorisation (183 GFlop at M=32).
 *    The new codebooks are kept only if re-encoding (beam) lowers the exact
 *    training MSE; `refine_iters` rounds, stopping at the first that does
 *    not help. Skipped below refine_min_per_codeword training vectors per
 *    codeword, where it memorises the training set.
 * 4. Memory: 2 * n * train_beam * d floats of residuals (51 MB for 10k x 128
 *    at beam 5), as in FAISS.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"
#include "qinx/kmeans.h"
#include "rq_impl.h"

#define QX__RQ_TRAIN_ROWS 4096 /* residual rows per sgemm block */
#define QX__RQ_CG_ITERS 30
#define QX__RQ_RIDGE 1e-2f

typedef struct train_state {
    qx__rq *rq;
    const float *x;
    size_t n, d, M, B;
    int nt;
    float *resid, *resid2;     /* n * nb * d, compact by current beam size */
    uint8_t *bcodes, *bcodes2; /* n * nb * M */
    float *bdist, *bdist2;     /* n * nb */
    float *dots;               /* QX__RQ_TRAIN_ROWS * 256 */
    size_t reseeded;           /* codewords re-seeded (all steps + refinement) */
} train_state;

/* Extend every vector's beam (nb entries in resid/bcodes) by step m into the
 * *2 arrays with min(B, nb*256) entries; returns that size. */
static size_t extend_step(train_state *st, size_t m, size_t nb) {
    qx__rq *rq = st->rq;
    size_t d = st->d, M = st->M, n = st->n;
    size_t nbn = nb * 256 < st->B ? nb * 256 : st->B;
    size_t vb = QX__RQ_TRAIN_ROWS / nb;
    if (vb < 1) vb = 1;
    const float *Cm = rq->codebooks + m * QX_KSUB * d, *norms = rq->norms + m * QX_KSUB;
    const qx__kernel_table *kt = qx__kernels();
    for (size_t v0 = 0; v0 < n; v0 += vb) {
        size_t vc = n - v0 < vb ? n - v0 : vb, rows = vc * nb;
        const float *R = st->resid + v0 * nb * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, QX_KSUB, (int)d, 1.0f, R,
                    (int)d, Cm, (int)d, 0.0f, st->dots, QX_KSUB);
#pragma omp parallel for num_threads(st->nt) schedule(static)
        for (size_t v = 0; v < vc; v++) {
            float hkey[QX__RQ_MAX_BEAM];
            uint64_t hval[QX__RQ_MAX_BEAM];
            qx__topk heap = {hkey, hval, nbn, 0};
            float score[QX_KSUB];
            for (size_t b = 0; b < nb; b++) {
                const float *r = R + (v * nb + b) * d, *dt = st->dots + (v * nb + b) * QX_KSUB;
                float rn = kt->dot(r, r, d);
                for (size_t k = 0; k < QX_KSUB; k++) score[k] = rn - 2.0f * dt[k] + norms[k];
                qx__beam_offer256(&heap, score, (uint16_t)b, kt->find_lt);
            }
            qx__topk_sort_small(&heap);
            size_t gv = v0 + v;
            for (size_t e = 0; e < heap.n; e++) {
                size_t par = gv * nb + qx__beam_parent(hval[e]), dst = gv * nbn + e;
                uint8_t code = qx__beam_code(hval[e]);
                const float *pr = st->resid + par * d, *c = Cm + (size_t)code * d;
                float *nr = st->resid2 + dst * d;
                for (size_t j = 0; j < d; j++) nr[j] = pr[j] - c[j];
                if (m) memcpy(st->bcodes2 + dst * M, st->bcodes + par * M, m);
                st->bcodes2[dst * M + m] = code;
                st->bdist2[dst] = hkey[e] > 0 ? hkey[e] : 0;
            }
        }
    }
    return nbn;
}

typedef struct err_idx {
    float err;
    size_t idx;
} err_idx;

static int cmp_err_desc(const void *a, const void *b) {
    const err_idx *x = a, *y = b;
    if (x->err != y->err) return x->err < y->err ? 1 : -1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Indices of vectors by decreasing error (err[v * stride]). */
static err_idx *worst_first(const float *err, size_t n, size_t stride) {
    err_idx *w = qx__malloc(n * sizeof *w);
    if (!w) return NULL;
    for (size_t v = 0; v < n; v++) w[v] = (err_idx){err[v * stride], v};
    qsort(w, n, sizeof *w, cmp_err_desc);
    return w;
}

static void step_norms(qx__rq *rq, size_t m) {
    size_t d = rq->base.d;
    const qx__kernel_table *kt = qx__kernels();
    for (size_t k = 0; k < QX_KSUB; k++) {
        const float *c = rq->codebooks + (m * QX_KSUB + k) * d;
        rq->norms[m * QX_KSUB + k] = kt->dot(c, c, d);
    }
}

/* After extend_step: re-seed step m's codewords unused by every vector's best
 * entry with the residual entering step m of the worst-encoded vectors.
 * Returns the number re-seeded (0: nothing to redo), or < 0 on error. */
static long reseed_step(train_state *st, size_t m, size_t nbn) {
    qx__rq *rq = st->rq;
    size_t d = st->d, M = st->M, n = st->n;
    uint32_t used[QX_KSUB] = {0};
    for (size_t v = 0; v < n; v++) used[st->bcodes2[v * nbn * M + m]]++;
    size_t dead = 0;
    for (size_t k = 0; k < QX_KSUB; k++) dead += used[k] == 0;
    if (dead == 0) return 0;
    err_idx *w = worst_first(st->bdist2, n, nbn);
    if (!w) return qx__fail(QX_ENOMEM, "rq train: re-seed order");
    float *Cm = rq->codebooks + m * QX_KSUB * d;
    size_t next = 0;
    for (size_t k = 0; k < QX_KSUB && next < n; k++) {
        if (used[k]) continue;
        size_t v = w[next++].idx, e = v * nbn; /* best entry */
        const float *r = st->resid2 + e * d, *c = Cm + (size_t)st->bcodes2[e * M + m] * d;
        float *dst = Cm + k * d;
        for (size_t j = 0; j < d; j++) dst[j] = r[j] + c[j];
    }
    qx__free(w);
    step_norms(rq, m);
    return (long)dead;
}

/* Exact mean squared error of codes (row stride M) using the first m steps;
 * if err is not NULL it receives each vector's error. */
static double exact_mse(const qx__rq *rq, const float *x, size_t n, const uint8_t *codes,
                        size_t m, int nt, float *err) {
    size_t d = rq->base.d, M = rq->base.M;
    double sum = 0;
#pragma omp parallel num_threads(nt) reduction(+ : sum)
    {
        float rec[1024];
        size_t chunk = d <= 1024 ? 1024 / d : 0;
#pragma omp for schedule(static)
        for (size_t v = 0; v < n; v++) {
            const float *xv = x + v * d;
            double e = 0;
            if (chunk) {
                qx__rq_decode_rows(rq, codes + v * M, 1, M, m, rec);
                for (size_t j = 0; j < d; j++) e += ((double)xv[j] - rec[j]) * (xv[j] - rec[j]);
            } else { /* large d: accumulate codewords one dimension at a time */
                for (size_t j = 0; j < d; j++) {
                    double r = xv[j];
                    for (size_t s = 0; s < m; s++)
                        r -= rq->codebooks[(s * QX_KSUB + codes[v * M + s]) * d + j];
                    e += r * r;
                }
            }
            if (err) err[v] = (float)e;
            sum += e;
        }
    }
    return sum / (double)n;
}

/* out = Bᵀ (B P) + λ P for P of shape (M*256) x d; y is n*d scratch. */
static void normal_apply(const qx__rq *rq, const uint8_t *codes, size_t n, const float *P,
                         float *out, float *y, int nt) {
    size_t d = rq->base.d, M = rq->base.M;
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (size_t v = 0; v < n; v++) {
            float *yv = y + v * d;
            memcpy(yv, P + (size_t)codes[v * M] * d, d * sizeof(float));
            for (size_t s = 1; s < M; s++) {
                const float *p = P + (s * QX_KSUB + codes[v * M + s]) * d;
                for (size_t j = 0; j < d; j++) yv[j] += p[j];
            }
        }
        /* each thread owns whole steps: no two threads touch the same row */
#pragma omp for schedule(static)
        for (size_t s = 0; s < M; s++) {
            float *o = out + s * QX_KSUB * d;
            const float *ps = P + s * QX_KSUB * d;
            for (size_t i = 0; i < QX_KSUB * d; i++) o[i] = QX__RQ_RIDGE * ps[i];
            for (size_t v = 0; v < n; v++) {
                float *row = o + (size_t)codes[v * M + s] * d;
                const float *yv = y + v * d;
                for (size_t j = 0; j < d; j++) row[j] += yv[j];
            }
        }
    }
}

/* Column-wise dot products: out[j] = Σ_i a[i*d + j] * b[i*d + j]. */
static void col_dots(const float *a, const float *b, size_t rows, size_t d, double *out) {
    for (size_t j = 0; j < d; j++) out[j] = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < d; j++) out[j] += (double)a[i * d + j] * b[i * d + j];
}

/* Least-squares codebooks for fixed codes, written into rq->codebooks. */
static int refine_codebooks(train_state *st, const uint8_t *codes) {
    qx__rq *rq = st->rq;
    size_t d = st->d, M = st->M, n = st->n, K = M * QX_KSUB, Kd = K * d;
    float *C = rq->codebooks;
    float *r = qx__aligned_alloc(Kd * sizeof(float)), *z = qx__aligned_alloc(Kd * sizeof(float));
    float *p = qx__aligned_alloc(Kd * sizeof(float)), *Ap = qx__aligned_alloc(Kd * sizeof(float));
    float *y = qx__aligned_alloc(n * d * sizeof(float));
    float *diag = qx__aligned_alloc(K * sizeof(float));
    double *rz = qx__malloc(d * sizeof(double)), *tmp = qx__malloc(d * sizeof(double));
    int rc = 0;
    if (!r || !z || !p || !Ap || !y || !diag || !rz || !tmp) {
        rc = qx__fail(QX_ENOMEM, "rq refine: %zu x %zu system", K, d);
        goto out;
    }
    /* rhs = Bᵀ X + λ C; r = rhs − A C = Bᵀ (X − B C) (the λ terms cancel) */
    for (size_t i = 0; i < K; i++) diag[i] = QX__RQ_RIDGE;
    for (size_t v = 0; v < n; v++)
        for (size_t s = 0; s < M; s++) diag[s * QX_KSUB + codes[v * M + s]] += 1.0f;
    qx__rq_decode_rows(rq, codes, n, M, M, y);
    for (size_t i = 0; i < n * d; i++) y[i] = st->x[i] - y[i];
    memset(r, 0, Kd * sizeof(float));
    for (size_t v = 0; v < n; v++)
        for (size_t s = 0; s < M; s++) {
            float *row = r + (s * QX_KSUB + codes[v * M + s]) * d;
            for (size_t j = 0; j < d; j++) row[j] += y[v * d + j];
        }
    for (size_t i = 0; i < K; i++)
        for (size_t j = 0; j < d; j++) z[i * d + j] = r[i * d + j] / diag[i];
    memcpy(p, z, Kd * sizeof(float));
    col_dots(r, z, K, d, rz);
    for (int it = 0; it < QX__RQ_CG_ITERS; it++) {
        normal_apply(rq, codes, n, p, Ap, y, st->nt);
        col_dots(p, Ap, K, d, tmp);
        for (size_t j = 0; j < d; j++) tmp[j] = tmp[j] > 0 ? rz[j] / tmp[j] : 0; /* alpha */
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < d; j++) {
                C[i * d + j] += (float)tmp[j] * p[i * d + j];
                r[i * d + j] -= (float)tmp[j] * Ap[i * d + j];
                z[i * d + j] = r[i * d + j] / diag[i];
            }
        col_dots(r, z, K, d, tmp);
        for (size_t j = 0; j < d; j++) {
            double beta = rz[j] > 0 ? tmp[j] / rz[j] : 0;
            rz[j] = tmp[j];
            tmp[j] = beta;
        }
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < d; j++) p[i * d + j] = z[i * d + j] + (float)tmp[j] * p[i * d + j];
    }
out:
    qx__aligned_free(r);
    qx__aligned_free(z);
    qx__aligned_free(p);
    qx__aligned_free(Ap);
    qx__aligned_free(y);
    qx__aligned_free(diag);
    qx__free(rz);
    qx__free(tmp);
    return rc;
}

/* After refinement: codewords no code uses get x − x̂ + c_{m,code_m} of the
 * worst-encoded vectors (the codeword that would zero that vector's error
 * given its other steps). err = per-vector errors of `codes`. */
static int reseed_refined(train_state *st, const uint8_t *codes, const float *err) {
    qx__rq *rq = st->rq;
    size_t d = st->d, M = st->M, n = st->n;
    err_idx *w = worst_first(err, n, 1);
    float *rec = qx__malloc(d * sizeof(float));
    uint32_t *used = qx__calloc(M * QX_KSUB, sizeof *used);
    if (!w || !rec || !used) {
        qx__free(w), qx__free(rec), qx__free(used);
        return qx__fail(QX_ENOMEM, "rq refine: re-seed scratch");
    }
    for (size_t v = 0; v < n; v++)
        for (size_t s = 0; s < M; s++) used[s * QX_KSUB + codes[v * M + s]]++;
    size_t next = 0;
    for (size_t s = 0; s < M; s++)
        for (size_t k = 0; k < QX_KSUB && next < n; k++) {
            if (used[s * QX_KSUB + k]) continue;
            size_t v = w[next++].idx;
            qx__rq_decode_rows(rq, codes + v * M, 1, M, M, rec);
            const float *c = rq->codebooks + (s * QX_KSUB + codes[v * M + s]) * d;
            float *dst = rq->codebooks + (s * QX_KSUB + k) * d;
            for (size_t j = 0; j < d; j++) dst[j] = st->x[v * d + j] - rec[j] + c[j];
            st->reseeded++;
        }
    qx__free(w), qx__free(rec), qx__free(used);
    return 0;
}

static int final_stats(qx__rq *rq, const float *x, size_t n, const uint8_t *codes, int nt) {
    size_t M = rq->base.M;
    if (!rq->step_mse) rq->step_mse = qx__malloc(M * sizeof(double));
    if (!rq->step_used) rq->step_used = qx__malloc(M * sizeof(uint32_t));
    uint8_t *seen = qx__calloc(QX_KSUB, 1);
    if (!rq->step_mse || !rq->step_used || !seen) {
        qx__free(seen);
        return qx__fail(QX_ENOMEM, "rq train: statistics");
    }
    for (size_t m = 0; m < M; m++) {
        rq->step_mse[m] = exact_mse(rq, x, n, codes, m + 1, nt, NULL);
        memset(seen, 0, QX_KSUB);
        uint32_t u = 0;
        for (size_t v = 0; v < n; v++) {
            uint8_t c = codes[v * M + m];
            u += !seen[c];
            seen[c] = 1;
        }
        rq->step_used[m] = u;
    }
    qx__free(seen);
    return 0;
}

int qx__rq_train(qx_quantizer *q, const float *x, size_t n) {
    qx__rq *rq = (qx__rq *)q;
    size_t d = q->d, M = q->M;
    size_t B = (size_t)(rq->opts.train_beam ? rq->opts.train_beam : rq->opts.beam);
    train_state st = {.rq = rq, .x = x, .n = n, .d = d, .M = M, .B = B,
                      .nt = qx__rq_threads(rq)};
    size_t rbytes, cbytes, nB;
    int rc = 0;
    uint8_t *codes = NULL, *codes2 = NULL;
    float *err = NULL, *cb_old = NULL;
    if (!qx__mul(n, B, &nB) || !qx__mul3(nB, d, sizeof(float), &rbytes) ||
        !qx__mul(nB, M, &cbytes))
        return qx__fail(QX_ENOMEM, "rq train: n=%zu beam=%zu d=%zu overflows", n, B, d);
    st.resid = qx__aligned_alloc(rbytes);
    st.resid2 = qx__aligned_alloc(rbytes);
    st.bcodes = qx__aligned_alloc(cbytes);
    st.bcodes2 = qx__aligned_alloc(cbytes);
    st.bdist = qx__aligned_alloc(nB * sizeof(float));
    st.bdist2 = qx__aligned_alloc(nB * sizeof(float));
    st.dots = qx__aligned_alloc((size_t)QX__RQ_TRAIN_ROWS * QX_KSUB * sizeof(float));
    codes = qx__aligned_alloc(n * M);
    codes2 = qx__aligned_alloc(n * M);
    err = qx__aligned_alloc(n * sizeof(float));
    cb_old = qx__aligned_alloc(M * QX_KSUB * d * sizeof(float));
    if (!st.resid || !st.resid2 || !st.bcodes || !st.bcodes2 || !st.bdist || !st.bdist2 ||
        !st.dots || !codes || !codes2 || !err || !cb_old) {
        rc = qx__fail(QX_ENOMEM, "rq train: %zu bytes of beam residuals for n=%zu beam=%zu",
                      2 * rbytes, n, B);
        goto out;
    }
    /* a failed re-training must not leave a half-overwritten model marked
     * trained (quantizer.c sets the flag again on success) */
    q->trained = 0;
    memcpy(st.resid, x, n * d * sizeof(float));
    size_t nb = 1;
    qx_kmeans_opts ko;
    qx_kmeans_opts_init(&ko);
    ko.niter = rq->opts.kmeans_iters;
    ko.progressive_dim_steps = rq->opts.kmeans_pdim;
    for (size_t m = 0; m < M; m++) {
        qx__progress(q, "rq: k-means per step", (double)m / (double)M);
        ko.seed = rq->opts.seed + m;
        rc = qx_kmeans(st.resid, n * nb, d, QX_KSUB, &ko, rq->codebooks + m * QX_KSUB * d, NULL);
        if (rc) {
            qx__wrap(rc, "rq train step %zu", m);
            goto out;
        }
        step_norms(rq, m);
        size_t nbn = extend_step(&st, m, nb);
        if (rq->opts.reseed_dead) {
            long r = reseed_step(&st, m, nbn);
            if (r < 0) {
                rc = (int)r;
                goto out;
            }
            if (r > 0) {
                st.reseeded += (size_t)r;
                extend_step(&st, m, nb);
            }
        }
        float *tf = st.resid; st.resid = st.resid2; st.resid2 = tf;
        uint8_t *tc = st.bcodes; st.bcodes = st.bcodes2; st.bcodes2 = tc;
        tf = st.bdist; st.bdist = st.bdist2; st.bdist2 = tf;
        nb = nbn;
    }
    for (size_t v = 0; v < n; v++) memcpy(codes + v * M, st.bcodes + v * nb * M, M);
    /* the beam residuals are no longer needed: free them before refinement */
    qx__aligned_free(st.resid), st.resid = NULL;
    qx__aligned_free(st.resid2), st.resid2 = NULL;
    if ((rc = qx__rq_tables(rq))) goto out;
    double mse = exact_mse(rq, x, n, codes, M, st.nt, err);
    /* Refinement fits M·256·d parameters to the n·d training values: with
     * fewer than refine_min_per_codeword vectors per codeword it memorises
     * them (rq.h), so it is skipped. */
    int refine = rq->opts.refine_iters;
    rq->refine_rounds = 0;
    if (refine && (double)n < (double)rq->opts.refine_min_per_codeword * (double)M * QX_KSUB) {
        refine = 0;
        rq->refine_rounds = -1;
    }
    for (int it = 0; it < refine; it++) {
        qx__progress(q, "rq: codebook refinement", (double)it / rq->opts.refine_iters);
        memcpy(cb_old, rq->codebooks, M * QX_KSUB * d * sizeof(float));
        size_t reseeded_before = st.reseeded;
        if ((rc = refine_codebooks(&st, codes))) goto out;
        if (rq->opts.reseed_dead && (rc = reseed_refined(&st, codes, err))) goto out;
        if ((rc = qx__rq_tables(rq))) goto out;
        if ((rc = qx__rq_encode_beam(rq, x, n, (int)B, codes2, NULL))) goto out;
        double mse2 = exact_mse(rq, x, n, codes2, M, st.nt, err);
        if (!(mse2 < mse)) { /* keep the old codebooks and stop */
            memcpy(rq->codebooks, cb_old, M * QX_KSUB * d * sizeof(float));
            st.reseeded = reseeded_before;
            if ((rc = qx__rq_tables(rq))) goto out;
            break;
        }
        mse = mse2;
        rq->refine_rounds = it + 1;
        uint8_t *t = codes; codes = codes2; codes2 = t;
    }
    rc = final_stats(rq, x, n, codes, st.nt);
    qx__progress(q, "rq: done", 1.0);
out:
    qx__aligned_free(st.resid);
    qx__aligned_free(st.resid2);
    qx__aligned_free(st.bcodes);
    qx__aligned_free(st.bcodes2);
    qx__aligned_free(st.bdist);
    qx__aligned_free(st.bdist2);
    qx__aligned_free(st.dots);
    qx__aligned_free(codes);
    qx__aligned_free(codes2);
    qx__aligned_free(err);
    qx__aligned_free(cb_old);
    return rc;
}
