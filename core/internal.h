/* core/internal.h — the core layer's helpers shared by every qinx translation
 * unit; not installed, not part of the public API (names are qx__…).
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
#include "qinx/core.h"

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

/* *out = a * b (or a + b, a * b * c); false on overflow (qinx/core.h). */
static inline bool qx__mul(size_t a, size_t b, size_t *out) { return qx_size_mul(a, b, out); }
static inline bool qx__add(size_t a, size_t b, size_t *out) { return qx_size_add(a, b, out); }
static inline bool qx__mul3(size_t a, size_t b, size_t c, size_t *out) {
    return qx_size_mul3(a, b, c, out);
}

/* Monotonic clock in seconds. */
double qx__now(void);

/* Number of worker threads the library may use (QX_THREADS env or nproc). */
int qx__num_threads(void);

/* CRC-32 (IEEE) of len bytes, continuing from crc (start with 0). */
uint32_t qx__crc32(uint32_t crc, const void *data, size_t len);
/* CRC of A || B from crc_a = CRC(A), crc_b = CRC(B) and len_b = len(B). */
uint32_t qx__crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* ---- files (core/file.c): the one atomic writer and directory fsync ---- */
#define QX__PATH_CAP QX_PATH_CAP
/* Write len bytes to fd, retrying on EINTR; QX_EIO on failure. */
int qx__write_all(int fd, const void *buf, size_t len);
/* fsync the directory holding path (makes a rename or a creation durable).
 * EINVAL / ENOTSUP (a filesystem that cannot sync directories) count as
 * success; any other failure is QX_EIO. */
int qx__fsync_dir(const char *path);
/* A file written in pieces and published atomically: open creates
 * path.tmp.XXXXXX (mode 0644), write appends, commit fsyncs, renames over
 * path and fsyncs the directory; abort (or a failed commit) removes the
 * temporary file. After a failed open or write, call abort. */
typedef qx_afile qx__afile; /* defined in qinx/core.h */
int qx__afile_open(qx__afile *f, const char *path);
int qx__afile_write(qx__afile *f, const void *data, size_t len);
int qx__afile_commit(qx__afile *f);
void qx__afile_abort(qx__afile *f);
/* Write len bytes to path atomically (qx__afile in one call). */
int qx__write_atomic(const char *path, const void *data, size_t len);

/* ---- evenly spaced samples (core/sample.c; qx_sample_index in qinx/core.h) ---- */
/* Copy the sample qx_sample_index of the n rows of d floats in x to out (m rows). */
void qx__sample_rows(const float *x, size_t n, size_t d, size_t m, float *out);

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
