/* quant/rq_impl.h — the RQ object and the internals shared by rq.c (object,
 * decode, LUT, serialization), rq_encode.c (look-up-table beam search) and
 * rq_train.c (training and codebook refinement). Internal, not installed. */
#ifndef QINX_RQ_IMPL_H
#define QINX_RQ_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "qinx/rq.h"
#include "quantizer_impl.h"
#include "topk.h"

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
    /* A loaded model computes cross (M(M-1)/2 x 256 KiB: 30 MiB at M=16) at
     * its first encode, not at load: a server's restart answers searches
     * before it writes (cross_mu guards the one computation; searches never
     * read cross) */
    pthread_mutex_t cross_mu;
    _Atomic int cross_ready;
    double *step_mse;   /* M, NULL before training */
    uint32_t *step_used; /* M */
    int refine_rounds;   /* see qx_rq_refine_rounds */
} qx__rq;

/* The beam keeps its best candidates in the core top-k heap (core/topk.h):
 * key = squared error, value = (entry extended << 8) | codeword of this step.
 * Shared by the LUT encoder and the training beam. */
static inline uint64_t qx__beam_val(uint16_t parent, uint8_t code) {
    return (uint64_t)parent << 8 | code;
}
static inline size_t qx__beam_parent(uint64_t v) { return (size_t)(v >> 8); }
static inline uint8_t qx__beam_code(uint64_t v) { return (uint8_t)v; }

/* Offer the 256 candidates score[k] (extending beam entry `parent`) to the
 * heap. find_lt (a kernel) skips the candidates that cannot enter, eight or
 * sixteen at a time. */
static inline void qx__beam_offer256(qx__topk *h, const float *score, uint16_t parent,
                                     size_t (*find_lt)(const float *, size_t, float)) {
    size_t k = 0;
    for (; h->n < h->k && k < 256; k++) qx__topk_push(h, score[k], qx__beam_val(parent, (uint8_t)k));
    while (k < 256) {
        k += find_lt(score + k, 256 - k, h->key[0]);
        if (k >= 256) break;
        h->key[0] = score[k];
        h->val[0] = qx__beam_val(parent, (uint8_t)k);
        qx__topk_sift_down(h, 0);
        k++;
    }
}

static inline size_t qx__rq_cross_offset(size_t j) { return j * (j - 1) / 2 * 65536; }

/* Recompute norms and cross products from the codebooks (after training,
 * refinement, set_codebooks or load). */
int qx__rq_tables(qx__rq *rq);
/* The norms only; cross is computed by the first encode (load). */
void qx__rq_norms(qx__rq *rq);
/* cross, if not computed yet (thread-safe). */
int qx__rq_cross_ensure(const qx__rq *rq);

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
