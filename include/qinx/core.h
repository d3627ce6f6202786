/* qinx/core.h — the core layer's public part: the few mechanisms that
 * programs built on the library (the server, the `qinx` command, the bench)
 * share with it, so that each exists once. All are thread-safe.
 * Every int-returning call returns 0 or a negative QX_E… code (qinx/error.h)
 * and sets the per-thread message; out-parameters come last.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_CORE_H
#define QINX_CORE_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

QX_BEGIN_DECLS

/* Monotonic clock in seconds. */
double qx_now(void);

/* Threads the library uses by default: QX_THREADS (1..256) if set, else the
 * number of online cores (at most 256). */
int qx_num_threads(void);

/* *out = a * b (or a + b, or a * b * c); 0 (false) on overflow. */
static inline int qx_size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline int qx_size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline int qx_size_mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    return qx_size_mul(a, b, &t) && qx_size_mul(t, c, out);
}

/* CRC-32 (IEEE 802.3) of len bytes, continuing from crc (start with 0). */
uint32_t qx_crc32(uint32_t crc, const void *data, size_t len);
/* CRC-32 of A || B from crc_a = qx_crc32(0, A), crc_b = qx_crc32(0, B) and
 * len_b = the length of B: pieces of one buffer checked on several threads. */
uint32_t qx_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* Write len bytes to the file descriptor fd, retrying on EINTR. QX_EIO. */
int qx_write_all(int fd, const void *buf, size_t len);

/* A file written in pieces and published atomically: open creates
 * path.tmp.XXXXXX beside path (mode 0644); write appends; commit fsyncs,
 * renames over path and fsyncs the directory; abort (or a failed commit)
 * removes the temporary file and leaves path as it was. After a failed open
 * or write, call abort. path must stay valid until commit or abort. */
#define QX_PATH_CAP 4096
typedef struct qx_afile {
    int fd;
    const char *path;
    char tmp[QX_PATH_CAP + 16];
} qx_afile;
int qx_afile_open(qx_afile *f, const char *path);
int qx_afile_write(qx_afile *f, const void *data, size_t len);
int qx_afile_commit(qx_afile *f);
void qx_afile_abort(qx_afile *f);

/* Write len bytes of data to path atomically: a temporary file beside path
 * (mode 0644), fsync, rename over path, fsync of the directory. A crash or a
 * failure leaves the old file or the complete new one. QX_EIO / QX_EINVAL. */
int qx_write_atomic(const char *path, const void *data, size_t len);

/* fsync the directory holding path, so a rename or creation there is
 * durable. A filesystem that cannot sync directories (EINVAL, ENOTSUP)
 * counts as success; any other failure is QX_EIO. */
int qx_fsync_dir(const char *path);

/* Write s to f as a JSON string, quotes included: '"' and '\\' escaped,
 * other bytes below 0x20 as \u00XX. s: NUL-terminated, any other byte. */
void qx_json_fputs(FILE *f, const char *s);

/* Row i of an evenly spaced sample of m of n rows (i < m <= n):
 * floor(i*n/m), computed exactly. Deterministic and spread over the input. */
static inline size_t qx_sample_index(size_t i, size_t n, size_t m) {
    return m == n ? i : (size_t)(((unsigned __int128)i * n) / m);
}

/* Copy an evenly spaced sample of m of the n rows of d floats in x to out
 * (m rows): row i is x's row floor(i*n/m). m <= n; out holds m*d floats.
 * The sample `qinx build --max-train` and the bench train on. */
void qx_sample_rows(const float *x, size_t n, size_t d, size_t m, float *out);

QX_END_DECLS
#endif
