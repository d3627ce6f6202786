/* core/sample.c — the one evenly spaced training / test sample: row i of an
 * m-row sample of n rows is floor(i*n/m). Used by `qinx build --max-train`,
 * the bench (its training set and cut jobs' subsets), the DERP gate and the
 * DERP tests, so that all of them take the same rows from the same file. */
#include <string.h>

#include "internal.h"
#include "qinx/core.h"

void qx__sample_rows(const float *x, size_t n, size_t d, size_t m, float *out) {
    for (size_t i = 0; i < m; i++)
        memcpy(out + i * d, x + qx_sample_index(i, n, m) * d, sizeof(float) * d);
}

void qx_sample_rows(const float *x, size_t n, size_t d, size_t m, float *out) {
    qx__sample_rows(x, n, d, m, out);
}
