/* qinx/eval.h — search quality against ground truth, one definition for the
 * CLI, the bench and the tests.
 *   r1, r10, r100: fraction of queries whose true nearest neighbour (ground
 *                  truth row 0) is among the first 1 / 10 / 100 results
 *   r10at10:       mean overlap of the first 10 results with the true 10
 * A figure that k (results per query) or gt_k cannot support is NaN.
 * Thread-safe (pure function). */
#ifndef QINX_EVAL_H
#define QINX_EVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qx_recall {
    double r1, r10, r100, r10at10;
} qx_recall;

/* ids: nq*k results (best first, -1 padding); gt: nq*gt_k true ids. */
void qx_recall_compute(const int64_t *ids, size_t k, const int32_t *gt, size_t gt_k, size_t nq,
                       qx_recall *out);

#ifdef __cplusplus
}
#endif
#endif
