/* quant/faiss_ext.cpp — qinx extensions to the FAISS C API (qinx/faiss_ext.h).
 *
 * Kept apart from quant/faiss_c.cpp because CMake drops that file when a
 * system libfaiss_c exists, while these functions are needed either way. A
 * FaissIndex* from any FAISS C API build is a faiss::Index*, so we cast and
 * walk the C++ objects directly. Wrappers (IndexPreTransform for OPQ/PCA,
 * IndexIDMap, IndexRefine) are unwrapped with dynamic_cast until an index
 * holding an AdditiveQuantizer is found; only a ResidualQuantizer has a beam,
 * only a LocalSearchQuantizer has LSQ's iteration counts.
 * No exception can escape: dynamic_cast on pointers does not throw.
 */
#include <faiss/Index.h>
#include <faiss/IndexAdditiveQuantizer.h>
#include <faiss/IndexAdditiveQuantizerFastScan.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFAdditiveQuantizer.h>
#include <faiss/IndexIVFAdditiveQuantizerFastScan.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/LocalSearchQuantizer.h>
#include <faiss/impl/ResidualQuantizer.h>

#include "internal.h"
#include "qinx/faiss_ext.h"

namespace {

/* The additive quantizer that encodes the vectors of index, or nullptr. */
faiss::AdditiveQuantizer *find_aq(faiss::Index *index) {
    for (int depth = 0; index && depth < 16; depth++) {
        if (auto *p = dynamic_cast<faiss::IndexPreTransform *>(index)) {
            index = p->index;
        } else if (auto *m = dynamic_cast<faiss::IndexIDMap *>(index)) {
            index = m->index;
        } else if (auto *r = dynamic_cast<faiss::IndexRefine *>(index)) {
            index = r->base_index;
        } else if (auto *a = dynamic_cast<faiss::IndexAdditiveQuantizer *>(index)) {
            return a->aq;
        } else if (auto *v = dynamic_cast<faiss::IndexIVFAdditiveQuantizer *>(index)) {
            return v->aq;
        } else if (auto *fs = dynamic_cast<faiss::IndexAdditiveQuantizerFastScan *>(index)) {
            return fs->aq;
        } else if (auto *vfs = dynamic_cast<faiss::IndexIVFAdditiveQuantizerFastScan *>(index)) {
            return vfs->aq;
        } else if (auto *c = dynamic_cast<faiss::AdditiveCoarseQuantizer *>(index)) {
            return c->aq;
        } else {
            return nullptr;
        }
    }
    return nullptr;
}

} // namespace

extern "C" int qx_faiss_set_beam(FaissIndex *index, int beam) {
    if (!index) return qx__fail(QX_EINVAL, "qx_faiss_set_beam: index is NULL");
    if (beam < 1 || beam > 1024)
        return qx__fail(QX_EINVAL, "qx_faiss_set_beam: beam=%d outside 1..1024", beam);
    faiss::AdditiveQuantizer *aq = find_aq(reinterpret_cast<faiss::Index *>(index));
    auto *rq = dynamic_cast<faiss::ResidualQuantizer *>(aq);
    if (!rq)
        return qx__fail(QX_EINVAL,
                        "qx_faiss_set_beam: the index has no residual quantizer (%s)",
                        aq ? "its additive quantizer is not an RQ" : "not an additive-quantizer index");
    rq->max_beam_size = beam;
    return 0;
}

extern "C" int qx_faiss_set_lsq_iters(FaissIndex *index, const qx_faiss_lsq_iters *it) {
    if (!index || !it) return qx__fail(QX_EINVAL, "qx_faiss_set_lsq_iters: index or iters is NULL");
    const int v[5] = {it->train_iters, it->train_ils_iters, it->encode_ils_iters, it->icm_iters, it->nperts};
    for (int i = 0; i < 5; i++)
        if (v[i] < 0 || v[i] > 100000)
            return qx__fail(QX_EINVAL, "qx_faiss_set_lsq_iters: iteration count %d outside 0..100000", v[i]);
    faiss::AdditiveQuantizer *aq = find_aq(reinterpret_cast<faiss::Index *>(index));
    auto *lsq = dynamic_cast<faiss::LocalSearchQuantizer *>(aq);
    if (!lsq)
        return qx__fail(QX_EINVAL, "qx_faiss_set_lsq_iters: the index has no local search quantizer (%s)",
                        aq ? "its additive quantizer is not an LSQ" : "not an additive-quantizer index");
    /* 0 keeps FAISS's value: callers set only what they change */
    if (it->train_iters) lsq->train_iters = (size_t)it->train_iters;
    if (it->train_ils_iters) lsq->train_ils_iters = (size_t)it->train_ils_iters;
    if (it->encode_ils_iters) lsq->encode_ils_iters = (size_t)it->encode_ils_iters;
    if (it->icm_iters) lsq->icm_iters = (size_t)it->icm_iters;
    if (it->nperts) lsq->nperts = (size_t)it->nperts;
    return 0;
}
