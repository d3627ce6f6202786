/* qinx/fastscan.h — the fast-scan quantizer: 4-bit residual steps scanned in
 * SIMD registers, refined by 8-bit residual steps (a two-rate code).
 *
 * A code of this quantizer has two parts, one after the other:
 *   - M4 residual steps of 16 codewords (4 bits each), two per byte (step 2j
 *     in the low nibble of byte j, step 2j+1 in the high nibble): M4/2 bytes;
 *   - M8 residual steps of 256 codewords (an RQ of M8 steps trained on what
 *     the 4-bit steps leave): M8 bytes.
 * qx_quantizer_steps() is the byte count M = M4/2 + M8. Each byte is one
 * additive step of 256 codewords (byte j < M4/2: a_{2j}[v & 15] + a_{2j+1}[v >> 4]),
 * so every generic path (look-up tables, decoding, DERP) works unchanged; the
 * IVF index stores the 4-bit part in 32-vector blocks and scans it with
 * vpshufb (qinx/ivf.h, docs/fastscan.md), then re-ranks a shortlist with the
 * whole code.
 *
 * Training: the 4-bit codebooks by k-means on residuals step by step (the
 * RQ recipe with K = 16; with product4, by k-means on each step's own
 * dimensions, a PQ), the 8-bit part as a qinx RQ (qinx/rq.h) on the
 * residuals of the beam-encoded 4-bit part. Encoding: beam search over the
 * 4-bit steps (width beam4), then the RQ's own beam search.
 * Concurrency: as qinx/quantizer.h.
 */
#ifndef QINX_FASTSCAN_H
#define QINX_FASTSCAN_H

#include "qinx/defs.h"

#include "qinx/quantizer.h"

QX_BEGIN_DECLS

#define QX_FS_MAX_STEPS4 120 /* 4-bit steps at most (with 2 norm steps: 61 pairs) */

typedef struct qx_fs_opts {
    size_t M4;        /* 4-bit steps, even, 2..QX_FS_MAX_STEPS4 (default 16) */
    size_t M8;        /* 8-bit refinement steps, 0..QX_MAX_STEPS (default 7);
                       * M4/2 + M8 <= QX_MAX_STEPS */
    int beam4;        /* beam width of the 4-bit encoding, 1..64 (default 4) */
    int beam;         /* beam width of the 8-bit RQ encoding (default 5) */
    int train_beam;   /* 8-bit RQ: beam while training (default 0 = beam) */
    int kmeans_iters; /* k-means iterations per 4-bit step (default 20) */
    uint64_t seed;    /* default 1234 */
    int threads;      /* 0 = all cores */
    int product4;     /* shape of the 4-bit steps: 0 = residual (each step a
                       * full-dimension codebook, default), 1 = product (step m
                       * owns dimensions qx_fs_subspace(d, M4, m): a PQ of
                       * M4 sub-vectors, M4 <= d). A product step's look-up
                       * table costs 16 × d/M4 multiply-adds instead of
                       * 16 × d, and its codewords decode by concatenation. */
} qx_fs_opts;

/* Dimensions [*lo, *hi) of 4-bit step m of a product-shaped quantizer of
 * dimension d with M4 steps: contiguous, sizes differ by at most one. */
static inline void qx_fs_subspace(size_t d, size_t M4, size_t m, size_t *lo, size_t *hi) {
    *lo = m * d / M4;
    *hi = (m + 1) * d / M4;
}

void qx_fs_opts_init(qx_fs_opts *opts);

/* A new untrained fast-scan quantizer for dimension d. */
int qx_fs_new(qx_quantizer **out, size_t d, const qx_fs_opts *opts);

/* The split of a trained or untrained fast-scan quantizer (0 for other kinds). */
size_t qx_fs_steps4(const qx_quantizer *q);
size_t qx_fs_steps8(const qx_quantizer *q);

/* The 4-bit codebooks: M4 * 16 * d floats, step-major (NULL for other kinds). */
const float *qx_fs_codebooks4(const qx_quantizer *q);
/* The 8-bit codebooks: M8 * 256 * d floats (NULL when M8 = 0 or another kind). */
const float *qx_fs_codebooks8(const qx_quantizer *q);

/* A product-shaped quantizer's 4-bit codebooks by dimension: d rows of 16
 * floats, row t = coordinate t of the 16 codewords of the step that owns t
 * (what a look-up table multiplies). NULL for the residual shape or another
 * kind. Derived, never stored. */
const float *qx_fs_product_rows(const qx_quantizer *q);

/* A product-shaped quantizer's 4-bit codewords packed for decoding: 16 × d
 * floats; step m's 16 codewords start at 16 × lo (qx_fs_subspace), each
 * hi − lo floats long (what a re-ranking reads), then 16 floats of zero
 * padding (SIMD readers load whole registers). NULL as above. */
const float *qx_fs_product_codewords(const qx_quantizer *q);

/* Replace the codebooks of a fast-scan quantizer: cb4 (M4 * 16 * d floats,
 * step-major) and cb8 (M8 * 256 * d floats; NULL when M8 = 0), both finite;
 * marks it trained. For tools that edit a trained model (the DERP gate's
 * planted faults); the 8-bit part keeps its own options. */
int qx_fs_set_codebooks(qx_quantizer *q, const float *cb4, const float *cb8);

QX_END_DECLS
#endif
