/* quant/rq_encode.c — RQ encoding by beam search on look-up tables, and the
 * tables themselves (codeword norms, cross inner products between steps).
 *
 * Follows the LUT formulation of FAISS's ResidualQuantizer (use_beam_LUT;
 * Babenko & Lempitsky, "Additive quantization", CVPR 2014, for the
 * expansion):
 *   ||x - Σ_i c_i||² = ||x||² - 2 Σ_i <x,c_i> + Σ_i ||c_i||² + 2 Σ_{i<j} <c_i,c_j>
 * so extending a beam entry with codes (k_0..k_{m-1}) by codeword k of step m
 * changes its error by ||c_mk||² - 2<x,c_mk> + 2 Σ_{i<m} <c_{i,k_i}, c_mk>.
 *
 * Decisions:
 * 1. <x, c_mk> for a block of vectors and all M*256 codewords is ONE sgemm,
 *    called outside any OpenMP region: OpenBLAS (the pthread build Debian
 *    ships) then uses its own threads, and the beam search that follows runs
 *    on OpenMP threads, so the two never oversubscribe the cores.
 * 2. A beam step for one entry sums m rows of 256 cross products (contiguous:
 *    see rq_impl.h) and scores 256 candidates; the best `beam` of all
 *    entries' candidates are kept with a bounded max-heap (beam ≤ 64, so the
 *    heap is tiny and nearly every candidate is rejected by one compare).
 * 3. Errors are tracked in float from ||x||²; they are used to rank, and as
 *    an estimate of the error (training uses exact errors where it matters).
 * 4. The cross table costs M(M-1)/2 * 256 KiB (7 MiB at M=8, 30 MiB at M=16,
 *    124 MiB at M=32, 504 MiB at M=64); it is what makes a beam step O(m*256)
 *    instead of O(d*256).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"
#include "rq_impl.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void qx__rq_norms(qx__rq *rq) {
    size_t M = rq->base.M, d = rq->base.d;
    const qx__kernel_table *k = qx__kernels();
    for (size_t i = 0; i < M * QX_KSUB; i++) {
        const float *c = rq->codebooks + i * d;
        rq->norms[i] = k->dot(c, c, d);
    }
    atomic_store(&rq->cross_ready, 0);
}

static int cross_compute(qx__rq *rq) {
    size_t M = rq->base.M, d = rq->base.d;
    if (d > (size_t)INT32_MAX) return qx__fail(QX_ELIMIT, "rq tables: d=%zu", d);
    for (size_t j = 1; j < M; j++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(j * QX_KSUB), QX_KSUB, (int)d,
                    1.0f, rq->codebooks, (int)d, rq->codebooks + j * QX_KSUB * d, (int)d, 0.0f,
                    rq->cross + qx__rq_cross_offset(j), QX_KSUB);
    atomic_store(&rq->cross_ready, 1);
    return 0;
}

int qx__rq_tables(qx__rq *rq) {
    qx__rq_norms(rq);
    return cross_compute(rq);
}

int qx__rq_cross_ensure(const qx__rq *crq) {
    if (atomic_load(&crq->cross_ready)) return 0;
    qx__rq *rq = (qx__rq *)crq; /* a cache of the codebooks, filled once under its mutex */
    pthread_mutex_lock(&rq->cross_mu);
    int rc = atomic_load(&rq->cross_ready) ? 0 : cross_compute(rq);
    pthread_mutex_unlock(&rq->cross_mu);
    return rc;
}

/* One beam step m for vector i of a block: extends its nb entries (codes
 * cur_codes + i*B*M, errors cur_dist + i*B) into next_*. part: 256 floats,
 * heap: a top-B heap over per-thread scratch. */
static void beam_step(const qx__rq *rq, const qx__kernel_table *kt, size_t m, size_t nb,
                      size_t B, const float *xc_i, const uint8_t *cur_codes,
                      const float *cur_dist, uint8_t *next_codes, float *next_dist, float *part,
                      qx__topk *heap) {
    size_t M = rq->base.M;
    const float *nm = rq->norms + m * QX_KSUB, *xm = xc_i + m * QX_KSUB;
    const float *cross_m = rq->cross + (m ? qx__rq_cross_offset(m) : 0);
    qx__topk_reset(heap, B);
    for (size_t b = 0; b < nb; b++) {
        kt->beam_scores(part, nm, xm, cur_dist[b], cross_m, cur_codes + b * M, m);
        qx__beam_offer256(heap, part, (uint16_t)b, kt->find_lt);
    }
    qx__topk_sort_small(heap);
    for (size_t e = 0; e < heap->n; e++) {
        uint8_t *dst = next_codes + e * M;
        if (m) memcpy(dst, cur_codes + qx__beam_parent(heap->val[e]) * M, m);
        dst[m] = qx__beam_code(heap->val[e]);
        next_dist[e] = heap->key[e];
    }
}

int qx__rq_encode_beam(const qx__rq *rq, const float *x, size_t n, int beam, uint8_t *codes,
                       float *err) {
    int crc = qx__rq_cross_ensure(rq);
    if (crc) return crc;
    size_t M = rq->base.M, d = rq->base.d, K = M * QX_KSUB, B = (size_t)beam;
    size_t block = ((size_t)1 << 22) / K; /* <x,c> block of ~16 MiB */
    if (block > QX__RQ_ENCODE_BLOCK) block = QX__RQ_ENCODE_BLOCK;
    if (block < 64) block = 64;
    if (block > n) block = n;
    int nt = qx__rq_threads(rq);
    if ((size_t)nt > block) nt = (int)block;
    if (d > (size_t)INT32_MAX) return qx__fail(QX_ELIMIT, "rq encode: d=%zu", d);

    /* per-thread, each part 64-byte aligned: part (256 floats), heap keys
     * (B floats), heap values (B u64) */
    size_t keys_bytes = (B * sizeof(float) + 63) & ~(size_t)63;
    size_t per_thread = 256 * sizeof(float) + keys_bytes + ((B * sizeof(uint64_t) + 63) & ~(size_t)63);
    float *xc = qx__aligned_alloc(block * K * sizeof(float));
    float *xn = qx__aligned_alloc(block * sizeof(float));
    uint8_t *scratch = qx__aligned_alloc(per_thread * (size_t)nt);
    /* beam state of every vector of the block, double-buffered */
    uint8_t *bc = qx__aligned_alloc(2 * block * B * M);
    float *bd = qx__aligned_alloc(2 * block * B * sizeof(float));
    if (!xc || !xn || !scratch || !bc || !bd) {
        qx__aligned_free(xc);
        qx__aligned_free(xn);
        qx__aligned_free(scratch);
        qx__aligned_free(bc);
        qx__aligned_free(bd);
        return qx__fail(QX_ENOMEM, "rq encode: scratch for %zu vectors", block);
    }
    const qx__kernel_table *kt = qx__kernels();
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t rows = n - i0 < block ? n - i0 : block;
        const float *xb = x + i0 * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)K, (int)d, 1.0f, xb,
                    (int)d, rq->codebooks, (int)d, 0.0f, xc, (int)K);
        for (size_t i = 0; i < rows; i++) xn[i] = kt->dot(xb + i * d, xb + i * d, d);
        /* Step-major: every vector of the block does step m before any does
         * m+1, so the cross-product rows of step m (m * 256 KiB) stay in
         * cache instead of each vector streaming the whole table. */
#pragma omp parallel num_threads(nt)
        {
#ifdef _OPENMP
            int tid = omp_get_thread_num();
#else
            int tid = 0;
#endif
            float *part = (float *)(void *)(scratch + per_thread * (size_t)tid);
            uint64_t *hval = (uint64_t *)(void *)((uint8_t *)(part + 256) + keys_bytes);
            qx__topk heap_s = {part + 256, hval, B, 0}, *heap = &heap_s;
            uint8_t *cc = bc, *nc = bc + block * B * M;
            float *cd = bd, *nd = bd + block * B;
            size_t nb = 1;
#pragma omp for schedule(static)
            for (size_t i = 0; i < rows; i++) cd[i * B] = xn[i];
            for (size_t m = 0; m < M; m++) {
#pragma omp for schedule(static)
                for (size_t i = 0; i < rows; i++)
                    beam_step(rq, kt, m, nb, B, xc + i * K, cc + i * B * M, cd + i * B,
                              nc + i * B * M, nd + i * B, part, heap);
                uint8_t *tc = cc;
                cc = nc;
                nc = tc;
                float *td = cd;
                cd = nd;
                nd = td;
                nb = nb * QX_KSUB < B ? nb * QX_KSUB : B;
            }
#pragma omp for schedule(static)
            for (size_t i = 0; i < rows; i++) {
                memcpy(codes + (i0 + i) * M, cc + i * B * M, M);
                if (err) err[i0 + i] = cd[i * B] > 0 ? cd[i * B] : 0;
            }
        }
    }
    qx__aligned_free(bc);
    qx__aligned_free(bd);
    qx__aligned_free(xc);
    qx__aligned_free(xn);
    qx__aligned_free(scratch);
    return 0;
}
