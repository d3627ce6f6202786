/* qinx/faiss_ext.h — small qinx extensions to the FAISS C API.
 *
 * FAISS's C API has no way to reach a few knobs the benchmark needs. These
 * take a FaissIndex* made by faiss_index_factory (or any FAISS C API
 * constructor) and work whether the C API is qinx's own binding or a system
 * libfaiss_c. They follow qinx conventions: 0 or a negative QX_E* code, the
 * reason in qx_last_error().
 * Concurrency: mutate the index; not safe concurrently with any other use of
 * the same index.
 */
#ifndef QINX_FAISS_EXT_H
#define QINX_FAISS_EXT_H

#include <faiss/c_api/Index_c.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Set the beam width (ResidualQuantizer::max_beam_size, FAISS's default 5)
 * used to encode by the residual quantizer inside index: an
 * IndexResidualQuantizer, IndexIVFResidualQuantizer, the fast-scan variants
 * or a ResidualCoarseQuantizer, possibly wrapped in IndexPreTransform (OPQ,
 * PCA), IndexIDMap or IndexRefine. beam must be in 1..1024.
 * Returns 0, QX_EINVAL (index NULL, beam out of range, or no RQ inside:
 * e.g. a PQ index) . */
int qx_faiss_set_beam(FaissIndex *index, int beam);

#ifdef __cplusplus
}
#endif
#endif
