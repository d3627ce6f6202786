/* quant/kernels_impl.h — the per-ISA kernel tables behind qinx/kernels.h
 * (internal). Each level fills one table in its own translation unit
 * (kernels_scalar.c, kernels_avx2.c, kernels_avx512.c; the last two get their
 * ISA flags from CMake by file-name suffix). kernels.c picks one table once
 * per process. Tests reach every table through qx__kernels_for() so each
 * variant is compared against the scalar reference. */
#ifndef QINX_KERNELS_IMPL_H
#define QINX_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/kernels.h"

typedef struct qx__kernel_table {
    const char *name;
    float (*l2sqr)(const float *a, const float *b, size_t d);
    float (*dot)(const float *a, const float *b, size_t d);
    void (*l2sqr_ny)(float *out, const float *x, const float *y, size_t d, size_t ny);
    void (*dot_ny)(float *out, const float *x, const float *y, size_t d, size_t ny);
    void (*lut_scan)(float *out, const uint8_t *codes, size_t n, size_t stride, size_t M,
                     const float *lut);
    /* RQ beam step (rq_encode.c): out[k] = a + (norms[k] - 2 xc[k]) + 2 *
     * sum_{i<m} rows[(i*256 + codes[i])*256 + k] for k < 256. */
    void (*beam_scores)(float *out, const float *norms, const float *xc, float a,
                        const float *rows, const uint8_t *codes, size_t m);
    /* First i < n with v[i] < thr, or n (candidate rejection in top-k). */
    size_t (*find_lt)(const float *v, size_t n, float thr);
} qx__kernel_table;

extern const qx__kernel_table qx__kernels_scalar;
extern const qx__kernel_table qx__kernels_avx2;
extern const qx__kernel_table qx__kernels_avx512;

/* Highest level this CPU (and OS) can run, ignoring QX_SIMD. */
qx_simd_level qx__simd_cpu_level(void);

/* The table of a level, or NULL when the CPU lacks it. */
const qx__kernel_table *qx__kernels_for(qx_simd_level level);

/* The table in use (chosen once; QX_SIMD honoured). */
const qx__kernel_table *qx__kernels(void);

/* Alternative lut_scan implementations kept for measurement (the table holds
 * the faster one on the machines we measured; see kernels_avx2.c). */
void qx__lut_scan_avx2_gather(float *out, const uint8_t *codes, size_t n, size_t stride,
                              size_t M, const float *lut);
void qx__lut_scan_scalar_unrolled(float *out, const uint8_t *codes, size_t n, size_t stride,
                                  size_t M, const float *lut);
void qx__lut_scan_scalar_ref(float *out, const uint8_t *codes, size_t n, size_t stride,
                             size_t M, const float *lut);

void qx__beam_scores_avx2(float *out, const float *norms, const float *xc, float a,
                          const float *rows, const uint8_t *codes, size_t m);
size_t qx__find_lt_avx2(const float *v, size_t n, float thr);
void qx__beam_scores_scalar(float *out, const float *norms, const float *xc, float a,
                            const float *rows, const uint8_t *codes, size_t m);
size_t qx__find_lt_scalar(const float *v, size_t n, float thr);

#endif
