/* qinx/rq.h — residual quantization (RQ).
 *
 * Step m quantizes the residual left by steps < m with 256 codewords.
 * Training: k-means per step on the residuals of the beam's best encodings,
 * then codebook refinement (least squares over all codebooks given the codes,
 * kept only if it lowers the MSE). Encoding: beam search of width `beam`
 * using look-up tables (codeword norms and cross inner products are
 * precomputed, so a beam step costs table look-ups, not d-dim distances).
 * Dead codewords (never used on the training set) are re-seeded from encoded
 * residuals during training when `reseed_dead` is on (the anchor idea of
 * CVQ-VAE).
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_RQ_H
#define QINX_RQ_H

#include "qinx/defs.h"

#include "qinx/quantizer.h"

QX_BEGIN_DECLS

/* default of qx_rq_opts.refine_min_per_codeword */
#define QX_RQ_REFINE_MIN_DEFAULT 8

typedef struct qx_rq_opts {
    size_t M;            /* steps = bytes per code, 1..QX_MAX_STEPS (default 8) */
    int beam;            /* beam width for encoding, 1..64 (default 5) */
    int train_beam;      /* beam width used while training (default = beam) */
    int kmeans_iters;    /* k-means iterations per step, per stage when
                          * kmeans_pdim > 0 (default 10) */
    int kmeans_pdim;     /* progressive-dimension k-means stages per step
                          * (default 5; 0 = Lloyd on all dimensions) */
    int refine_iters;    /* codebook refinement rounds (default 6; 0 = off);
                          * training stops at the first round that does not
                          * lower the MSE */
    int refine_min_per_codeword; /* refinement runs only when the training set
                          * has at least this many vectors per codeword,
                          * n >= value x M x 256 (default 8; 0 = always).
                          * With fewer it fits the training vectors and
                          * loses on unseen ones (Fashion-MNIST 8 B, 4.9
                          * per codeword: base MSE 6.03e5 -> 6.19e5; GloVe
                          * 16 B, 12.2: held-out 0.1551 -> 0.1539). Set 0
                          * when the training set is every vector the codes
                          * will hold. Training-only: not stored in the blob */
    int reseed_dead;     /* re-seed unused codewords while training (default 1) */
    uint64_t seed;       /* default 1234 */
    int threads;         /* 0 = all cores */
} qx_rq_opts;

void qx_rq_opts_init(qx_rq_opts *opts);

/* A new untrained RQ for dimension d (1..QX_MAX_DIM). */
int qx_rq_new(qx_quantizer **out, size_t d, const qx_rq_opts *opts);

/* Per-step statistics of the last training run (for DERP and reports):
 * mse_after[m] is the training MSE using steps 0..m; used[m] the number of
 * codewords that received at least one vector. Arrays of length M, valid
 * while q lives; NULL before training. */
const double *qx_rq_step_mse(const qx_quantizer *q);
const uint32_t *qx_rq_step_used(const qx_quantizer *q);

/* The refinement of the last training in this process: *rounds receives the
 * rounds kept (0..refine_iters), *skipped 1 when refine_min_per_codeword
 * skipped refinement (then *rounds is 0), else 0. Both 0 before training and
 * after loading. Either pointer may be NULL. Returns 0, or QX_EINVAL when q
 * is NULL or not an RQ. */
int qx_rq_refine_rounds(const qx_quantizer *q, int *rounds, int *skipped);

/* Codebooks: M * 256 * d floats (step-major). */
const float *qx_rq_codebooks(const qx_quantizer *q);

/* Overwrite the codebooks (M*256*d floats) of an RQ and mark it trained;
 * for tests and fault injection. */
int qx_rq_set_codebooks(qx_quantizer *q, const float *codebooks);

QX_END_DECLS
#endif
