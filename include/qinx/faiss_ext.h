/* qinx/faiss_ext.h — small qinx extensions to the FAISS C API.
 *
 * FAISS's C API has no way to reach a few knobs the benchmark needs. These
 * take a FaissIndex* made by faiss_index_factory (or any FAISS C API
 * constructor) and work whether the C API is qinx's own binding or a system
 * libfaiss_c. They follow qinx conventions: 0 or a negative QX_E* code, the
 * reason in qx_last_error().
 * Concurrency: mutate the index; not safe concurrently with any other use of
 * the same index.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_FAISS_EXT_H
#define QINX_FAISS_EXT_H

#include "qinx/defs.h"

#include <faiss/c_api/Index_c.h>

QX_BEGIN_DECLS

/* Set the beam width (ResidualQuantizer::max_beam_size, FAISS's default 5)
 * used to encode by the residual quantizer inside index: an
 * IndexResidualQuantizer, IndexIVFResidualQuantizer, the fast-scan variants
 * or a ResidualCoarseQuantizer, possibly wrapped in IndexPreTransform (OPQ,
 * PCA), IndexIDMap or IndexRefine. beam must be in 1..1024.
 * Returns 0, QX_EINVAL (index NULL, beam out of range, or no RQ inside:
 * e.g. a PQ index) . */
int qx_faiss_set_beam(FaissIndex *index, int beam);

/* Iteration counts of FAISS's LocalSearchQuantizer (LSQ, Martinez et al.
 * 2018), FAISS 1.7's defaults in brackets. 0 keeps the index's current
 * value. Training runs train_iters rounds of (codebook update, local search
 * of train_ils_iters perturb-and-ICM rounds); encoding runs encode_ils_iters
 * such rounds; each ICM pass is icm_iters sweeps over the M codes; nperts
 * codes are perturbed per round. The cost of training and encoding is about
 * proportional to the products of these counts. */
typedef struct qx_faiss_lsq_iters {
    int train_iters;      /* [25] */
    int train_ils_iters;  /* [8] */
    int encode_ils_iters; /* [16] */
    int icm_iters;        /* [4] */
    int nperts;           /* [4] */
} qx_faiss_lsq_iters;

/* Set LSQ's iteration counts on the LocalSearchQuantizer inside index (an
 * IndexLocalSearchQuantizer, IndexIVFLocalSearchQuantizer, fast-scan variant
 * or LocalSearchCoarseQuantizer, possibly wrapped as for qx_faiss_set_beam).
 * Call before training. Every count must be in 0..100000.
 * Returns 0, QX_EINVAL (index or it NULL, count out of range, no LSQ inside). */
int qx_faiss_set_lsq_iters(FaissIndex *index, const qx_faiss_lsq_iters *it);

QX_END_DECLS
#endif
