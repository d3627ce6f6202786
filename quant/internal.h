/* quant/internal.h — helpers shared by every qinx translation unit; not
 * installed, not part of the public API (names are qx__…).
 *
 * 1. Errors: qx__fail(code, fmt, …) records the per-thread message and returns
 *    code, so a failure path reads `return qx__fail(QX_EINVAL, "k=%d", k);`.
 * 2. Memory: everything goes through qx__malloc & co (the seam of alloc.h);
 *    direct malloc/calloc/realloc/free are poisoned below for library files.
 *    Sizes are computed with qx__mul/qx__add, which report overflow.
 * 3. Vectors and codes are stored in 64-byte aligned blocks
 *    (qx__aligned_alloc / qx__aligned_free).
 */
#ifndef QINX_INTERNAL_H
#define QINX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "qinx/error.h"
#include "qinx/alloc.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define QX__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define QX__PRINTF(a, b)
#endif

int qx__fail(int code, const char *fmt, ...) QX__PRINTF(2, 3);
/* Prefix the current message with more context: "reading x.fvecs: <old>". */
int qx__wrap(int code, const char *fmt, ...) QX__PRINTF(2, 3);

void *qx__malloc(size_t size);
void *qx__calloc(size_t n, size_t size);
void *qx__realloc(void *ptr, size_t size);
void qx__free(void *ptr);
void *qx__aligned_alloc(size_t size);   /* 64-byte aligned, size may be 0 */
void qx__aligned_free(void *ptr);
char *qx__strdup(const char *s);

/* *out = a * b (or a + b); false on overflow. */
static inline bool qx__mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool qx__add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
/* a*b*c with overflow check. */
static inline bool qx__mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    return qx__mul(a, b, &t) && qx__mul(t, c, out);
}

/* Monotonic clock in seconds. */
double qx__now(void);

/* Number of worker threads the library may use (QX_THREADS env or nproc). */
int qx__num_threads(void);

/* CRC-32 (IEEE) of len bytes, continuing from crc (start with 0). */
uint32_t qx__crc32(uint32_t crc, const void *data, size_t len);

/* Write len bytes to path atomically: temporary file in the same directory,
 * fsync, rename over path, fsync the directory. */
int qx__write_atomic(const char *path, const uint8_t *data, size_t len);

/* Is every value finite? Returns the index of the first bad value, or -1. */
long qx__first_nonfinite(const float *x, size_t n);

/* Progressive-dimension k-means in `steps` stages (quant/kmeans_pdim.cpp),
 * called by qx_kmeans with its validated arguments and the clustering
 * parameters it built for Lloyd. */
struct FaissClusteringParameters;
int qx__kmeans_pdim(const float *x, size_t n, size_t d, size_t k,
                    const struct FaissClusteringParameters *cp, int steps, float *centroids);

#ifdef __cplusplus
}
#endif

#if !defined(__cplusplus) && !defined(QX__ALLOW_LIBC_ALLOC)
#pragma GCC poison malloc calloc realloc free
#endif

#endif
