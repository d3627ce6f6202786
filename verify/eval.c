/* verify/eval.c — recall figures against ground truth (see qinx/eval.h);
 * the ANN-benchmarks / FAISS conventions. */
#include <math.h>

#include "internal.h"
#include "qinx/eval.h"

int qx_recall_compute(const int64_t *ids, size_t k, const int32_t *gt, size_t gt_k, size_t nq,
                      qx_recall *out) {
    if (!out || (nq && (!ids || !gt)))
        return qx__fail(QX_EINVAL, "recall: NULL argument");
    if (k == 0 || gt_k == 0)
        return qx__fail(QX_EINVAL, "recall: k=%zu, gt_k=%zu (both must be >= 1)", k, gt_k);
    size_t h1 = 0, h10 = 0, h100 = 0, inter = 0;
    for (size_t i = 0; i < nq; i++) {
        const int64_t *res = ids + i * k;
        const int32_t *g = gt + i * gt_k;
        for (size_t j = 0; j < k; j++) {
            if (res[j] == g[0]) {
                h1 += j < 1;
                h10 += j < 10;
                h100 += j < 100;
                break;
            }
        }
        size_t kk = k < 10 ? k : 10, gk = gt_k < 10 ? gt_k : 10;
        for (size_t j = 0; j < kk; j++)
            for (size_t t = 0; t < gk; t++)
                if (res[j] == g[t]) {
                    inter++;
                    break;
                }
    }
    double n = nq ? (double)nq : 1.0;
    out->r1 = (double)h1 / n;
    out->r10 = k >= 10 ? (double)h10 / n : NAN;
    out->r100 = k >= 100 ? (double)h100 / n : NAN;
    out->r10at10 = k >= 10 && gt_k >= 10 ? (double)inter / (10.0 * n) : NAN;
    return 0;
}
