/* quant/rq_impl.h — the RQ object and the internals shared by rq.c (object,
 * decode, LUT, serialization), rq_encode.c (look-up-table beam search) and
 * rq_train.c (training and codebook refinement). Internal, not installed. */
#ifndef QINX_RQ_IMPL_H
#define QINX_RQ_IMPL_H

#include "qinx/rq.h"
#include "quantizer_impl.h"

#define QX__RQ_MAX_BEAM 64
/* Vectors per sgemm block while encoding: big enough for BLAS efficiency,
 * small enough that the <x, c_mk> block (rows * M * 256 floats) stays a few
 * MB. */
#define QX__RQ_ENCODE_BLOCK 1024

typedef struct qx__rq {
    struct qx_quantizer base; /* first: the vtable's view */
    qx_rq_opts opts;
    float *codebooks; /* M*256*d, step-major */
    float *norms;     /* M*256: ||c_mk||^2 */
    /* Cross inner products of every step pair i < j, grouped by j: the block
     * of step j holds j*256 rows (row i*256 + k_i) of 256 floats
     * <c_{i,k_i}, c_{j,k_j}>, so one beam step reads contiguous rows. The
     * block of step j starts at j*(j-1)/2 * 65536 floats. */
    float *cross;
    double *step_mse;   /* M, NULL before training */
    uint32_t *step_used; /* M */
    int refine_rounds;   /* see qx_rq_refine_rounds */
} qx__rq;

/* A beam candidate and a bounded max-heap of them (worst on top), shared by
 * the LUT encoder and the training beam. */
typedef struct qx__cand {
    float dist;
    uint16_t parent; /* beam entry extended */
    uint8_t code;    /* codeword of this step */
} qx__cand;

/* Insertion sort of a small heap's entries by increasing distance. */
static inline void qx__cand_sort(qx__cand *h, size_t n) {
    for (size_t i = 1; i < n; i++) {
        qx__cand c = h[i];
        size_t j = i;
        while (j > 0 && h[j - 1].dist > c.dist) {
            h[j] = h[j - 1];
            j--;
        }
        h[j] = c;
    }
}

static inline void qx__heap_sift_down(qx__cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, big = i;
        if (l < n && h[l].dist > h[big].dist) big = l;
        if (r < n && h[r].dist > h[big].dist) big = r;
        if (big == i) return;
        qx__cand t = h[i];
        h[i] = h[big];
        h[big] = t;
        i = big;
    }
}

static inline void qx__heap_push(qx__cand *h, size_t n, qx__cand c) { /* h has room for n+1 */
    size_t i = n;
    h[i] = c;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].dist >= h[i].dist) break;
        qx__cand t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

/* Offer the 256 candidates score[k] (extending beam entry `parent`) to a heap
 * of nh <= B entries; returns the new size. find_lt (a kernel) skips the
 * candidates that cannot enter, eight or sixteen at a time. */
static inline size_t qx__heap_offer256(qx__cand *h, size_t nh, size_t B, const float *score,
                                       uint16_t parent,
                                       size_t (*find_lt)(const float *, size_t, float)) {
    size_t k = 0;
    for (; nh < B && k < 256; k++) qx__heap_push(h, nh++, (qx__cand){score[k], parent, (uint8_t)k});
    while (k < 256) {
        k += find_lt(score + k, 256 - k, h[0].dist);
        if (k >= 256) break;
        h[0] = (qx__cand){score[k], parent, (uint8_t)k};
        qx__heap_sift_down(h, nh, 0);
        k++;
    }
    return nh;
}

static inline size_t qx__rq_cross_offset(size_t j) { return j * (j - 1) / 2 * 65536; }

/* Recompute norms and cross products from the codebooks (after training,
 * refinement, set_codebooks or load). */
int qx__rq_tables(qx__rq *rq);

/* Beam search with look-up tables: codes (n*M) of the n vectors x using beam
 * width `beam`; err (optional, n) receives each vector's squared error as
 * tracked by the tables. Parallel over vectors (threads from opts). */
int qx__rq_encode_beam(const qx__rq *rq, const float *x, size_t n, int beam, uint8_t *codes,
                       float *err);

/* Sum of the first m steps' codewords for n codes of row stride `stride`. */
void qx__rq_decode_rows(const qx__rq *rq, const uint8_t *codes, size_t n, size_t stride,
                        size_t m, float *out);

int qx__rq_train(qx_quantizer *q, const float *x, size_t n);

int qx__rq_threads(const qx__rq *rq);

#endif
