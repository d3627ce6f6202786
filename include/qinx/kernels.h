/* qinx/kernels.h — distance kernels, chosen once per process by CPU level.
 *
 * Every kernel has a scalar reference; AVX2 (+FMA) and AVX-512 variants live
 * in their own files and are selected on first use from the CPU's features.
 * The environment variable QX_SIMD=scalar|avx2|avx512 forces a lower level
 * (a level the CPU lacks is never chosen). All functions are thread-safe.
 * Conventions: qinx/defs.h; these kernels cannot fail and are BLAS-shaped:
 * the output comes first.
 */
#ifndef QINX_KERNELS_H
#define QINX_KERNELS_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS

typedef enum qx_simd_level {
    QX_SIMD_SCALAR = 0,
    QX_SIMD_AVX2 = 1,
    QX_SIMD_AVX512 = 2
} qx_simd_level;

/* Level in use ("scalar", "avx2", "avx512"). */
qx_simd_level qx_simd_active(void);
const char *qx_simd_name(qx_simd_level level);

/* Squared L2 distance and inner product of two d-vectors. */
float qx_l2sqr(const float *a, const float *b, size_t d);
float qx_dot(const float *a, const float *b, size_t d);

/* out[j] = ||x - y_j||^2 for ny rows y_j of y (row stride d). */
void qx_l2sqr_ny(float *out, const float *x, const float *y, size_t d, size_t ny);
/* out[j] = <x, y_j>. */
void qx_dot_ny(float *out, const float *x, const float *y, size_t d, size_t ny);

/* Additive look-up-table scan: for each of n codes (row i at codes + i*stride,
 * M bytes, one per step) out[i] = sum_m lut[m*256 + code[m]]. */
void qx_lut_scan(float *out, const uint8_t *codes, size_t n, size_t stride,
                 size_t M, const float *lut);

/* Many-against-many: dist[i*ny + j] = ||x_i - y_j||^2 (OpenBLAS sgemm plus
 * norms). x_norms / y_norms may be NULL (computed here). Returns 0 or an
 * error code (out of memory). */
int qx_l2sqr_matrix(float *dist, const float *x, size_t nx, const float *y,
                    size_t ny, size_t d, const float *x_norms, const float *y_norms);

QX_END_DECLS
#endif
