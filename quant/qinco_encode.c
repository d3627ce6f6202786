/* quant/qinco_encode.c — encoding (pre-selection + beam search) and exact
 * decoding of the QINCo-style quantizer, batched through OpenBLAS and
 * parallel over chunks of vectors with OpenMP.
 *
 * Follows QINCo2 (Vallaeys et al., arXiv 2501.03078, §3.1): running the
 * network on all 256 codewords of every step for every beam entry is what
 * makes QINCo slow, so each beam entry first scores the 256 *base* codewords
 * with the RQ-like distance ||r − c_k||² (one sgemm), and only the best A go
 * through f_m; the beam keeps the best B of the B·A adapted candidates by the
 * exact error ||x − (x̂ + c'_k)||².
 *
 * Decisions:
 * 1. The concat layer is linear, so W·[c ; x̂] + b = (Wcc·c + b) + Wcx·x̂:
 *    the codeword half (and its image through the first block's W1) is a
 *    per-step table computed once per model (qx__qinco_tables_compute), the
 *    x̂ half is computed once per beam entry, not per candidate. Per candidate
 *    only the ReLU, the first W2 and the later blocks remain.
 * 2. Chunks have fixed boundaries (a multiple of the chunk size from the
 *    start of the call) whatever the thread count, and all selection is
 *    sequential within a chunk, so codes do not depend on `threads`.
 * 3. Ties (equal scores) keep the lower beam entry, then the lower codeword
 *    index — the order in which an exhaustive RQ beam search meets them, so a
 *    model with f = 0 returns the RQ's codes.
 * 4. With A >= B the pre-selection loses nothing for f = 0: the B best
 *    extensions over all beam entries are among each entry's A best.
 * 5. Per-thread scratch is allocated before the parallel region (errors are
 *    per-thread messages; a worker could not report one to the caller).
 */
#include <cblas.h>
#include <omp.h>
#include <math.h>
#include <string.h>

#include "qinco_impl.h"

#define QX__ENC_ROWS 2048 /* candidate rows per chunk: Z is ~1 MB at d = 128 */
#define QX__DEC_ROWS 256

size_t qx__qinco_table_stride(const qx__qinco *q) {
    return QX__QK * (q->d + q->h + 1);
}

int qx__qinco_tables_compute(const qx__qinco *q, const float *params, float *tables) {
    size_t d = q->d, h = q->h, K = QX__QK, T = qx__qinco_table_stride(q);
    int nt = qx__qinco_threads(q), tok = qx__qinco_blas_single_begin(nt);
    /* steps are independent: one per thread, single-threaded sgemm each */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t m = 0; m < q->M; m++) {
        const float *cb = params + qx__qinco_off_cb(q, m);
        float *Pc = tables + m * T, *Hc = Pc + K * d, *cbn = Hc + K * h;
        /* ||c_k||² of the codeword in model units, c = rho_m ĉ */
        double r2 = (double)q->rho[m] * q->rho[m];
        for (size_t k = 0; k < K; k++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) s += (double)cb[k * d + j] * cb[k * d + j];
            cbn[k] = (float)(s * r2);
        }
        if (m == 0) continue;
        qx__qinco_net net;
        qx__qinco_net_view(q, params, m, &net);
        for (size_t k = 0; k < K; k++) memcpy(Pc + k * d, net.bc, d * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)d, (int)d, 1.0f, cb,
                    (int)d, net.Wc, (int)(2 * d), 1.0f, Pc, (int)d);
        if (q->L > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)h, (int)d, 1.0f, Pc,
                        (int)d, net.W1[0], (int)d, 0.0f, Hc, (int)h);
    }
    qx__qinco_blas_single_end(tok);
    return 0;
}

/* Keep the k smallest (score, idx) in ascending order; ties keep the earlier. */
static inline void topk_push(float *bs, int *bi, size_t *cnt, size_t k, float s, int idx) {
    size_t p;
    if (*cnt < k) {
        p = (*cnt)++;
    } else {
        if (!(s < bs[k - 1])) return;
        p = k - 1;
    }
    while (p > 0 && s < bs[p - 1]) {
        bs[p] = bs[p - 1];
        bi[p] = bi[p - 1];
        p--;
    }
    bs[p] = s;
    bi[p] = idx;
}

/* The A smallest of n scores (n a multiple of 16, A <= n), ascending, ties
 * in index order: what A calls of topk_push over the row would keep. The
 * A-th smallest of the 16-score blocks' minima bounds the A-th smallest
 * score from above (A blocks hold a score at most that large), so only the
 * scores at or below it, from the blocks whose minimum is, are candidates:
 * ~A to 2A of them, gathered without branches and sorted by insertion.
 * (topk_push over all 256 scores of every beam entry was 11 % of an epoch.)
 * cs, ci: n floats / ints of scratch. Declared in qinco_impl.h for the test. */
void qx__qinco_select_smallest(const float *v, size_t n, size_t A, int *out, float *cs, int *ci) {
    float bmin[QX__QK / 16];
    size_t nbk = n / 16;
    for (size_t b = 0; b < nbk; b++) {
        float lo = INFINITY;
#pragma omp simd reduction(min : lo)
        for (size_t k = b * 16; k < b * 16 + 16; k++) lo = v[k] < lo ? v[k] : lo;
        bmin[b] = lo;
    }
    /* A-th smallest block minimum: a partial insertion sort of a copy */
    float top[QX__QK / 16];
    size_t nt = 0, need = A < nbk ? A : nbk;
    for (size_t b = 0; b < nbk; b++) {
        float x = bmin[b];
        if (nt == need && !(x < top[nt - 1])) continue;
        size_t p = nt < need ? nt++ : nt - 1;
        while (p > 0 && x < top[p - 1]) top[p] = top[p - 1], p--;
        top[p] = x;
    }
    float thr = A <= nbk ? top[need - 1] : INFINITY;
    size_t nc = 0;
    for (size_t b = 0; b < nbk; b++) {
        if (!(bmin[b] <= thr)) continue;
        for (size_t k = b * 16; k < b * 16 + 16; k++) {
            cs[nc] = v[k];
            ci[nc] = (int)k;
            nc += v[k] <= thr;
        }
    }
    /* stable insertion sort by score (indices already ascending) */
    for (size_t a = 1; a < nc; a++) {
        float x = cs[a];
        int xi = ci[a];
        size_t p = a;
        while (p > 0 && x < cs[p - 1]) cs[p] = cs[p - 1], ci[p] = ci[p - 1], p--;
        cs[p] = x;
        ci[p] = xi;
    }
    for (size_t a = 0; a < A; a++) out[a] = ci[a];
}

typedef struct scratch {
    float *xn, *xh, *xh2, *res, *sc, *zx, *hx, *Z, *H, *cd, *bs;
    int *ck, *bi;
    uint8_t *codes, *codes2;
} scratch;

static void scratch_free(scratch *s) {
    qx__aligned_free(s->xn);
    qx__aligned_free(s->xh);
    qx__aligned_free(s->xh2);
    qx__aligned_free(s->res);
    qx__aligned_free(s->sc);
    qx__aligned_free(s->zx);
    qx__aligned_free(s->hx);
    qx__aligned_free(s->Z);
    qx__aligned_free(s->H);
    qx__aligned_free(s->cd);
    qx__aligned_free(s->bs);
    qx__aligned_free(s->ck);
    qx__aligned_free(s->bi);
    qx__aligned_free(s->codes);
    qx__aligned_free(s->codes2);
}

/* nc vectors, beam B, A candidates. Sizes are small multiples of the chunk
 * (bounded by QX__ENC_ROWS·d·…), validated options keep them in range. */
static int scratch_alloc(scratch *s, const qx__qinco *q, size_t nc, size_t B, size_t A) {
    size_t d = q->d, h = q->h ? q->h : 1, K = QX__QK, nb = nc * B, na = nb * A, f = sizeof(float);
    memset(s, 0, sizeof *s);
    s->xn = qx__aligned_alloc(nc * d * f);
    s->xh = qx__aligned_alloc(nb * d * f);
    s->xh2 = qx__aligned_alloc(nb * d * f);
    s->res = qx__aligned_alloc(nb * d * f);
    s->sc = qx__aligned_alloc(nb * K * f);
    s->zx = qx__aligned_alloc(nb * d * f);
    s->hx = qx__aligned_alloc(nb * h * f);
    s->Z = qx__aligned_alloc(na * d * f);
    s->H = qx__aligned_alloc(na * h * f);
    s->cd = qx__aligned_alloc(na * f);
    size_t sel = A > B ? A : B; /* selection scratch: select_smallest needs K */
    if (sel < K) sel = K;
    s->bs = qx__aligned_alloc(sel * f);
    s->ck = qx__aligned_alloc(na * sizeof(int));
    s->bi = qx__aligned_alloc(sel * sizeof(int));
    s->codes = qx__aligned_alloc(nb * q->M);
    s->codes2 = qx__aligned_alloc(nb * q->M);
    if (!s->xn || !s->xh || !s->xh2 || !s->res || !s->sc || !s->zx || !s->hx || !s->Z || !s->H ||
        !s->cd || !s->bs || !s->ck || !s->bi || !s->codes || !s->codes2) {
        scratch_free(s);
        return qx__fail(QX_ENOMEM, "qinco: encoder scratch (%zu candidate rows)", na);
    }
    return 0;
}

/* c' for nr rows of reconstruction xh (scaled) × na candidates each (codes
 * ck, row-major nr × na) at step m, into Z (nr·na × d). */
static void eval_step(const qx__qinco *q, const float *params, const float *tables, size_t m,
                      const float *xh, size_t nr, const int *ck, size_t na, scratch *s) {
    size_t d = q->d, h = q->h, K = QX__QK, n = nr * na;
    const float *cb = params + qx__qinco_off_cb(q, m);
    float *Z = s->Z, *H = s->H, rho = q->rho[m];
    if (m == 0) {
        for (size_t r = 0; r < n; r++)
            for (size_t t = 0; t < d; t++) Z[r * d + t] = rho * cb[(size_t)ck[r] * d + t];
        return;
    }
    const float *Pc = tables + m * qx__qinco_table_stride(q), *Hc = Pc + K * d;
    qx__qinco_net net;
    qx__qinco_net_view(q, params, m, &net);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)d, (int)d, 1.0f, xh,
                (int)d, net.Wc + d, (int)(2 * d), 0.0f, s->zx, (int)d);
    if (q->L > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)h, (int)d, 1.0f, s->zx,
                    (int)d, net.W1[0], (int)d, 0.0f, s->hx, (int)h);
    for (size_t j = 0; j < nr; j++) {
        const float *zx = s->zx + j * d, *hx = s->hx + j * h;
        for (size_t a = 0; a < na; a++) {
            size_t r = j * na + a, k = (size_t)ck[r];
            float *z = Z + r * d;
            const float *pc = Pc + k * d;
#pragma omp simd
            for (size_t t = 0; t < d; t++) z[t] = pc[t] + zx[t];
            if (q->L > 0) {
                float *hr = H + r * h;
                const float *hc = Hc + k * h;
#pragma omp simd
                for (size_t t = 0; t < h; t++) {
                    float v = hc[t] + hx[t];
                    hr[t] = v > 0 ? v : 0;
                }
            }
        }
    }
    for (size_t l = 0; l < q->L; l++) {
        if (l > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)h, (int)d, 1.0f, Z,
                        (int)d, net.W1[l], (int)d, 0.0f, H, (int)h);
#pragma omp simd
            for (size_t t = 0; t < n * h; t++) H[t] = H[t] > 0 ? H[t] : 0;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)d, (int)h, 1.0f, H,
                    (int)h, net.W2[l], (int)h, 1.0f, Z, (int)d);
    }
    for (size_t r = 0; r < n; r++) {
        const float *c = cb + (size_t)ck[r] * d;
        float *z = Z + r * d;
#pragma omp simd
        for (size_t t = 0; t < d; t++) z[t] = rho * (c[t] + z[t]);
    }
}

/* Score all K base codewords of step m for nr residual rows:
 * sc = ||c||² − 2<r,c> with c = rho_m ĉ. */
static void preselect(const qx__qinco *q, const float *params, const float *tables, size_t m,
                      const float *res, size_t nr, size_t A, scratch *s, int *ck) {
    size_t d = q->d, K = QX__QK;
    const float *cb = params + qx__qinco_off_cb(q, m);
    const float *cbn = tables + m * qx__qinco_table_stride(q) + K * (d + q->h);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)K, (int)d,
                -2.0f * q->rho[m], res, (int)d, cb, (int)d, 0.0f, s->sc, (int)K);
    for (size_t j = 0; j < nr; j++) {
        float *row = s->sc + j * K;
#pragma omp simd
        for (size_t k = 0; k < K; k++) row[k] += cbn[k];
        qx__qinco_select_smallest(row, K, A, ck + j * A, s->bs, s->bi);
    }
}

static void encode_chunk(const qx__qinco *q, const float *params, const float *tables,
                         const float *x, const float *ctx, size_t nc, size_t B, size_t A,
                         uint8_t *out, scratch *s) {
    size_t d = q->d, M = q->M;
    for (size_t t = 0; t < nc * d; t++) s->xn[t] = x[t] * q->inv_scale;
    /* Step 0: a plain codebook; the beam starts from the B nearest codewords
     * (B <= 64 < K, so every beam is full from here on and rows of the beam
     * state are (vector i, entry b) at i*B + b). With a context, x̂ starts
     * at it and the target becomes ctx + x (residuals are unchanged). */
    preselect(q, params, tables, 0, s->xn, nc, B, s, s->ck);
    for (size_t j = 0; j < nc * B; j++) {
        int k = s->ck[j];
        const float *c = ctx ? ctx + (j / B) * d : NULL;
        for (size_t t = 0; t < d; t++)
            s->xh[j * d + t] = q->rho[0] * params[(size_t)k * d + t] + (c ? c[t] * q->inv_scale : 0.0f);
        s->codes[j * M] = (uint8_t)k;
    }
    if (ctx)
        for (size_t t = 0; t < nc * d; t++) s->xn[t] += ctx[t] * q->inv_scale;
    size_t nr = nc * B;
    for (size_t m = 1; m < M; m++) {
        for (size_t j = 0; j < nr; j++) {
            float *r = s->res + j * d;
            const float *xh = s->xh + j * d, *xi = s->xn + (j / B) * d;
#pragma omp simd
            for (size_t t = 0; t < d; t++) r[t] = xi[t] - xh[t];
        }
        preselect(q, params, tables, m, s->res, nr, A, s, s->ck);
        eval_step(q, params, tables, m, s->xh, nr, s->ck, A, s);
        for (size_t j = 0; j < nr; j++)
            for (size_t a = 0; a < A; a++) {
                const float *z = s->Z + (j * A + a) * d, *r = s->res + j * d;
                float e = 0;
#pragma omp simd reduction(+ : e)
                for (size_t t = 0; t < d; t++) {
                    float df = r[t] - z[t];
                    e += df * df;
                }
                s->cd[j * A + a] = e;
            }
        /* Candidate c of vector i is (entry c / A, pre-selected rank c % A). */
        for (size_t i = 0; i < nc; i++) {
            size_t cnt = 0;
            for (size_t c = 0; c < B * A; c++)
                topk_push(s->bs, s->bi, &cnt, B, s->cd[i * B * A + c], (int)c);
            for (size_t b = 0; b < B; b++) {
                size_t c = (size_t)s->bi[b], j = i * B + c / A;
                const float *xh = s->xh + j * d, *z = s->Z + (i * B * A + c) * d;
                float *dst = s->xh2 + (i * B + b) * d;
#pragma omp simd
                for (size_t t = 0; t < d; t++) dst[t] = xh[t] + z[t];
                uint8_t *cd = s->codes2 + (i * B + b) * M;
                memcpy(cd, s->codes + j * M, m);
                cd[m] = (uint8_t)s->ck[i * B * A + c];
            }
        }
        float *tf = s->xh;
        s->xh = s->xh2;
        s->xh2 = tf;
        uint8_t *tc = s->codes;
        s->codes = s->codes2;
        s->codes2 = tc;
    }
    for (size_t i = 0; i < nc; i++) memcpy(out + i * M, s->codes + i * B * M, M);
}

/* Vectors per chunk: at most QX__ENC_ROWS candidate rows, and the chunks of
 * a call equal in size and a multiple of 4 in number when there are enough
 * vectors, so that 2 or 4 threads get equal shares (a 256-vector training
 * batch was 5 chunks of 51 and one of 1: one thread did 3 of 5 chunks'
 * work). Depends on n, B and A only, never on the thread count (decision 2). */
static size_t enc_chunk_cap(size_t B, size_t A) {
    size_t per = B * A, cap = QX__ENC_ROWS / (per ? per : 1);
    return cap < 1 ? 1 : cap > 256 ? 256 : cap;
}

static size_t enc_chunk_size(size_t n, size_t B, size_t A) {
    size_t cap = enc_chunk_cap(B, A);
    size_t nch = (n + cap - 1) / cap;
    if (n >= 4 * 8) nch = (nch + 3) / 4 * 4; /* chunks of at least 8 vectors */
    if (nch < 1) nch = 1;
    size_t nc = (n + nch - 1) / nch;
    return nc < 1 ? 1 : nc;
}

/* Per-thread scratch kept between calls (the trainer encodes every batch:
 * fresh buffers cost page faults on first touch, 5 % of an epoch). */
struct qx__qinco_encws {
    int T;
    size_t nc, B, A;
    scratch *s;
};

void qx__qinco_encws_free(qx__qinco_encws *w) {
    if (!w) return;
    for (int t = 0; t < w->T; t++) scratch_free(&w->s[t]);
    qx__free(w->s);
    qx__free(w);
}

/* *ws holds T scratch sets for (nc, B, A), reallocated if it does not. */
static int encws_ensure(qx__qinco_encws **ws, const qx__qinco *q, int T, size_t nc, size_t B,
                        size_t A) {
    qx__qinco_encws *w = *ws;
    if (w && w->T >= T && w->nc >= nc && w->B == B && w->A == A) return 0;
    qx__qinco_encws_free(w);
    *ws = NULL;
    w = qx__calloc(1, sizeof *w);
    if (!w || !(w->s = qx__calloc((size_t)T, sizeof *w->s))) {
        qx__free(w);
        return qx__fail(QX_ENOMEM, "qinco: encoder scratch");
    }
    w->nc = nc, w->B = B, w->A = A;
    for (; w->T < T; w->T++) {
        int rc = scratch_alloc(&w->s[w->T], q, nc, B, A);
        if (rc) {
            qx__qinco_encws_free(w);
            return rc;
        }
    }
    *ws = w;
    return 0;
}

int qx__qinco_encode_ws(const qx__qinco *q, const float *params, const float *tables,
                        const float *x, const float *ctx, size_t n, int beam, int A, int threads,
                        uint8_t *codes, qx__qinco_encws **ws) {
    size_t B = (size_t)beam, nA = (size_t)A, nc = enc_chunk_size(n, B, nA);
    size_t nchunks = (n + nc - 1) / nc;
    int T = threads > 0 ? threads : 1;
    if ((size_t)T > nchunks) T = (int)nchunks;
    if (T < 1) return 0;
    int rc = encws_ensure(ws, q, T, enc_chunk_cap(B, nA), B, nA);
    if (rc) return rc;
    scratch *s = (*ws)->s;
    int tok = qx__qinco_blas_single_begin(T);
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * nc, cnt = n - i0 < nc ? n - i0 : nc;
        encode_chunk(q, params, tables, x + i0 * q->d, ctx ? ctx + i0 * q->d : NULL, cnt, B, nA,
                     codes + i0 * q->M, &s[omp_get_thread_num()]);
    }
    qx__qinco_blas_single_end(tok);
    return 0;
}

int qx__qinco_encode_with(const qx__qinco *q, const float *params, const float *tables,
                          const float *x, const float *ctx, size_t n, int beam, int A,
                          int threads, uint8_t *codes) {
    qx__qinco_encws *ws = NULL;
    int rc = qx__qinco_encode_ws(q, params, tables, x, ctx, n, beam, A, threads, codes, &ws);
    qx__qinco_encws_free(ws);
    return rc;
}

int qx__qinco_decode_ws(const qx__qinco *q, const float *params, const float *tables,
                        const uint8_t *codes, const float *ctx, size_t n, size_t mm, int threads,
                        float *out, qx__qinco_encws **ws) {
    size_t d = q->d, M = q->M, nc = QX__DEC_ROWS, nchunks = (n + nc - 1) / nc;
    int T = threads > 0 ? threads : 1;
    if ((size_t)T > nchunks) T = (int)nchunks;
    if (T < 1) return 0;
    int rc = encws_ensure(ws, q, T, nc, 1, 1);
    if (rc) return rc;
    scratch *s = (*ws)->s;
    int tok = qx__qinco_blas_single_begin(T);
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
    for (size_t c = 0; c < nchunks; c++) {
        scratch *sc = &s[omp_get_thread_num()];
        size_t i0 = c * nc, cnt = n - i0 < nc ? n - i0 : nc;
        /* x̂ starts at the context (res: its scaled copy), the output is
         * what the steps add to it */
        if (ctx)
            for (size_t t = 0; t < cnt * d; t++) sc->res[t] = sc->xh[t] = ctx[i0 * d + t] * q->inv_scale;
        else memset(sc->xh, 0, cnt * d * sizeof(float));
        for (size_t m = 0; m < mm; m++) {
            for (size_t i = 0; i < cnt; i++) sc->ck[i] = codes[(i0 + i) * M + m];
            eval_step(q, params, tables, m, sc->xh, cnt, sc->ck, 1, sc);
            for (size_t t = 0; t < cnt * d; t++) sc->xh[t] += sc->Z[t];
        }
        for (size_t t = 0; t < cnt * d; t++)
            out[i0 * d + t] = (ctx ? sc->xh[t] - sc->res[t] : sc->xh[t]) * q->scale;
    }
    qx__qinco_blas_single_end(tok);
    return 0;
}

int qx__qinco_decode_with(const qx__qinco *q, const float *params, const float *tables,
                          const uint8_t *codes, const float *ctx, size_t n, size_t mm,
                          int threads, float *out) {
    qx__qinco_encws *ws = NULL;
    int rc = qx__qinco_decode_ws(q, params, tables, codes, ctx, n, mm, threads, out, &ws);
    qx__qinco_encws_free(ws);
    return rc;
}
