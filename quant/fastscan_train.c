/* quant/fastscan_train.c — training and encoding of the fast-scan quantizer.
 *
 * Decisions:
 * 1. The 4-bit codebooks start as residual k-means (K = 16, one step after
 *    the other, greedy assignment: the RQ recipe), then QX__FS_ROUNDS rounds
 *    of: beam-encode the training set, and set each step's codebook to the
 *    least-squares optimum given the codes (the mean of what the other steps
 *    leave, per codeword; block coordinate descent, so the training MSE of
 *    fixed codes never rises). Greedy RQ codebooks are a poor fit for beam
 *    encoding; one or two such rounds recover most of the gap.
 * 2. Beam encoding with K = 16 keeps explicit residuals per beam entry
 *    (beam × d floats): a step is beam × 16 dot products, cheaper than the
 *    look-up-table formulation of rq_encode.c needs in tables at K = 16.
 * 4. Product shape: each step's codebook is k-means (K = 16) on its own
 *    dimensions of x, a PQ; the steps are independent, so the greedy
 *    encoding is exact and the least-squares rounds have nothing to add
 *    (they would also spread codewords outside their dimensions).
 * 3. The 8-bit part is an ordinary qinx RQ trained on the residuals of the
 *    beam-encoded 4-bit part (so training and encoding see the same
 *    residuals).
 */
#include <string.h>

#include "fastscan_impl.h"
#include "qinx/kmeans.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define QX__FS_ROUNDS 2
#define QX__FS_MAX_BEAM 64

typedef struct beam_scratch {
    float *res, *res2;     /* B * d */
    float *err, *err2;     /* B */
    uint8_t *nib, *nib2;   /* B * M4 */
    float dots[QX__FS_K4];
} beam_scratch;

/* Beam search over the 4-bit steps for one vector. */
static void encode4_one(const qx__fs *fs, const float *x, size_t B, beam_scratch *s, uint8_t *nib_out,
                        float *res_out) {
    size_t d = fs->base.d, M4 = fs->M4;
    memcpy(s->res, x, sizeof(float) * d);
    s->err[0] = qx_dot(x, x, d);
    size_t nb = 1;
    /* candidates kept sorted: (err, parent, code) */
    float cerr[QX__FS_MAX_BEAM];
    uint16_t cpar[QX__FS_MAX_BEAM];
    uint8_t ccode[QX__FS_MAX_BEAM];
    for (size_t st = 0; st < M4; st++) {
        const float *A = fs->cb4 + st * QX__FS_K4 * d, *nrm = fs->norms4 + st * QX__FS_K4;
        size_t nc = 0;
        for (size_t e = 0; e < nb; e++) {
            qx_dot_ny(s->dots, s->res + e * d, A, d, QX__FS_K4);
            for (size_t k = 0; k < QX__FS_K4; k++) {
                float v = s->err[e] - 2.0f * s->dots[k] + nrm[k];
                if (nc == B && v >= cerr[B - 1]) continue;
                size_t j = nc < B ? nc++ : B - 1;
                while (j > 0 && cerr[j - 1] > v) {
                    cerr[j] = cerr[j - 1];
                    cpar[j] = cpar[j - 1];
                    ccode[j] = ccode[j - 1];
                    j--;
                }
                cerr[j] = v;
                cpar[j] = (uint16_t)e;
                ccode[j] = (uint8_t)k;
            }
        }
        for (size_t j = 0; j < nc; j++) {
            const float *r = s->res + cpar[j] * d, *a = A + ccode[j] * d;
            float *o = s->res2 + j * d;
            for (size_t t = 0; t < d; t++) o[t] = r[t] - a[t];
            if (st) memcpy(s->nib2 + j * M4, s->nib + cpar[j] * M4, st);
            s->nib2[j * M4 + st] = ccode[j];
            s->err2[j] = cerr[j];
        }
        float *tf = s->res; s->res = s->res2; s->res2 = tf;
        tf = s->err; s->err = s->err2; s->err2 = tf;
        uint8_t *tb = s->nib; s->nib = s->nib2; s->nib2 = tb;
        nb = nc;
    }
    memcpy(nib_out, s->nib, M4);
    if (res_out) memcpy(res_out, s->res, sizeof(float) * d);
}

int qx__fs_encode4(const qx__fs *fs, const float *x, size_t n, int beam, uint8_t *nib, float *res) {
    size_t d = fs->base.d, M4 = fs->M4, B = (size_t)beam;
    int nt = qx__fs_threads(fs), err = 0;
    if ((size_t)nt > n) nt = n ? (int)n : 1;
#pragma omp parallel num_threads(nt) reduction(min : err)
    {
        beam_scratch s;
        float *res_mem = qx__aligned_alloc(sizeof(float) * B * d * 2);
        float *err_mem = qx__malloc(sizeof(float) * B * 2);
        uint8_t *nib_mem = qx__malloc(B * M4 * 2);
        int ok = res_mem && err_mem && nib_mem;
        if (!ok) err = QX_ENOMEM;
        s.res = res_mem;
        s.res2 = ok ? res_mem + B * d : NULL;
        s.err = err_mem;
        s.err2 = ok ? err_mem + B : NULL;
        s.nib = nib_mem;
        s.nib2 = ok ? nib_mem + B * M4 : NULL;
        /* every thread reaches the worksharing loop, even one without
         * scratch (it then skips its share and reports the failure) */
#pragma omp for schedule(dynamic, 256)
        for (size_t i = 0; i < n; i++)
            if (ok) encode4_one(fs, x + i * d, B, &s, nib + i * M4, res ? res + i * d : NULL);
        qx__aligned_free(res_mem);
        qx__free(err_mem);
        qx__free(nib_mem);
    }
    return err ? qx__fail(QX_ENOMEM, "fastscan encode: beam scratch") : 0;
}

/* Least-squares codebook update of every 4-bit step given the codes; res
 * holds x − Σ a (updated as the codebooks move). */
static void update_codebooks(qx__fs *fs, const uint8_t *nib, float *res, size_t n, double *sums,
                             size_t *cnt) {
    size_t d = fs->base.d, M4 = fs->M4;
    for (size_t st = 0; st < M4; st++) {
        float *A = fs->cb4 + st * QX__FS_K4 * d;
        memset(sums, 0, sizeof(double) * QX__FS_K4 * d);
        memset(cnt, 0, sizeof(size_t) * QX__FS_K4);
        for (size_t i = 0; i < n; i++) {
            size_t k = nib[i * M4 + st];
            const float *r = res + i * d, *a = A + k * d;
            double *o = sums + k * d;
            for (size_t t = 0; t < d; t++) o[t] += (double)r[t] + a[t];
            cnt[k]++;
        }
        for (size_t k = 0; k < QX__FS_K4; k++) {
            if (!cnt[k]) continue;
            for (size_t t = 0; t < d; t++) sums[k * d + t] = sums[k * d + t] / (double)cnt[k] - A[k * d + t];
        }
        /* sums now holds new − old per used codeword: move the residuals */
        for (size_t i = 0; i < n; i++) {
            size_t k = nib[i * M4 + st];
            float *r = res + i * d;
            const double *dl = sums + k * d;
            for (size_t t = 0; t < d; t++) r[t] -= (float)dl[t];
        }
        for (size_t k = 0; k < QX__FS_K4; k++)
            if (cnt[k])
                for (size_t t = 0; t < d; t++) A[k * d + t] += (float)sums[k * d + t];
    }
}

/* Decision 4: k-means per step on its dimensions (res is scratch of n * d
 * floats: each step's sub-vectors are gathered into it). */
static int train_product(qx__fs *fs, const float *x, size_t n, float *res, uint32_t *assign,
                         qx_kmeans_opts *ko) {
    size_t d = fs->base.d, M4 = fs->M4;
    float *cent = qx__malloc(sizeof(float) * QX__FS_K4 * (d / M4 + 1));
    if (!cent) return qx__fail(QX_ENOMEM, "fastscan: product centroids");
    memset(fs->cb4, 0, sizeof(float) * M4 * QX__FS_K4 * d);
    int rc = 0;
    for (size_t st = 0; st < M4 && rc == 0; st++) {
        qx__progress(&fs->base, "fastscan 4-bit product k-means", (double)st / (double)M4);
        size_t lo, hi;
        qx_fs_subspace(d, M4, st, &lo, &hi);
        size_t ds = hi - lo;
        for (size_t i = 0; i < n; i++) memcpy(res + i * ds, x + i * d + lo, sizeof(float) * ds);
        ko->seed = fs->opts.seed + st;
        rc = qx_kmeans(res, n, ds, QX__FS_K4, ko, cent, assign);
        if (rc) {
            qx__wrap(rc, "fastscan: product k-means of step %zu", st);
            break;
        }
        for (size_t k = 0; k < QX__FS_K4; k++)
            memcpy(fs->cb4 + (st * QX__FS_K4 + k) * d + lo, cent + k * ds, sizeof(float) * ds);
    }
    qx__free(cent);
    return rc;
}

int qx__fs_train(qx_quantizer *q, const float *x, size_t n) {
    qx__fs *fs = (qx__fs *)q;
    size_t d = q->d, M4 = fs->M4;
    float *res = qx__aligned_alloc(sizeof(float) * n * d);
    uint32_t *assign = qx__malloc(sizeof(uint32_t) * n);
    uint8_t *nib = qx__malloc(n * M4);
    double *sums = qx__malloc(sizeof(double) * QX__FS_K4 * d);
    size_t cnt[QX__FS_K4];
    int rc = 0;
    if (!res || !assign || !nib || !sums) {
        rc = qx__fail(QX_ENOMEM, "fastscan train: %zu vectors of dimension %zu", n, d);
        goto out;
    }
    memcpy(res, x, sizeof(float) * n * d);
    qx_kmeans_opts ko;
    qx_kmeans_opts_init(&ko);
    ko.niter = fs->opts.kmeans_iters;
    if (fs->opts.product4) {
        rc = train_product(fs, x, n, res, assign, &ko);
        if (rc == 0) rc = qx__fs_tables(fs);
        goto rest;
    }
    for (size_t st = 0; st < M4 && rc == 0; st++) {
        qx__progress(q, "fastscan 4-bit k-means", (double)st / (double)M4);
        ko.seed = fs->opts.seed + st;
        float *A = fs->cb4 + st * QX__FS_K4 * d;
        rc = qx_kmeans(res, n, d, QX__FS_K4, &ko, A, assign);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            const float *a = A + (size_t)assign[i] * d;
            for (size_t t = 0; t < d; t++) res[i * d + t] -= a[t];
        }
    }
    if (rc) goto out;
    if ((rc = qx__fs_tables(fs))) goto out;
    for (int r = 0; r < QX__FS_ROUNDS && rc == 0; r++) {
        qx__progress(q, "fastscan 4-bit refinement", (double)r / QX__FS_ROUNDS);
        if ((rc = qx__fs_encode4(fs, x, n, fs->opts.beam4, nib, res))) break;
        update_codebooks(fs, nib, res, n, sums, cnt);
        rc = qx__fs_tables(fs);
    }
rest:
    /* the 8-bit part learns what the final 4-bit encoding leaves */
    if (rc == 0) rc = qx__fs_encode4(fs, x, n, fs->opts.beam4, nib, res);
    if (rc == 0 && fs->rq) {
        qx_quantizer_set_progress(fs->rq, q->progress, q->progress_ctx);
        rc = qx_quantizer_train(fs->rq, res, n);
    }
    if (rc == 0) rc = qx__fs_tables(fs);
    qx__progress(q, "fastscan training", 1.0);
out:
    qx__aligned_free(res);
    qx__free(assign);
    qx__free(nib);
    qx__free(sums);
    return rc;
}

int qx__fs_encode(const qx_quantizer *q, const float *x, size_t n, uint8_t *codes) {
    const qx__fs *fs = (const qx__fs *)q;
    size_t d = q->d, M4 = fs->M4, M8 = fs->M8, M = q->M, H = M4 / 2;
    enum { CHUNK = 8192 };
    size_t chunk = n < CHUNK ? n : CHUNK;
    float *res = qx__aligned_alloc(sizeof(float) * chunk * d);
    uint8_t *nib = qx__malloc(chunk * M4), *c8 = qx__malloc(chunk * (M8 ? M8 : 1));
    int rc = 0;
    if (!res || !nib || !c8) rc = qx__fail(QX_ENOMEM, "fastscan encode: %zu vectors", chunk);
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += chunk) {
        size_t b = n - i0 < chunk ? n - i0 : chunk;
        rc = qx__fs_encode4(fs, x + i0 * d, b, fs->opts.beam4, nib, res);
        if (rc == 0 && fs->rq) rc = qx_quantizer_encode(fs->rq, res, b, c8);
        for (size_t i = 0; rc == 0 && i < b; i++) {
            uint8_t *o = codes + (i0 + i) * M;
            for (size_t j = 0; j < H; j++) o[j] = (uint8_t)(nib[i * M4 + 2 * j] | nib[i * M4 + 2 * j + 1] << 4);
            if (M8) memcpy(o + H, c8 + i * M8, M8);
        }
    }
    qx__aligned_free(res);
    qx__free(nib);
    qx__free(c8);
    return rc;
}
