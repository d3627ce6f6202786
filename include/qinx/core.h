/* qinx/core.h — the core layer's public part: the few mechanisms that
 * programs built on the library (the server, the `qinx` command, the bench)
 * share with it, so that each exists once. All are thread-safe.
 * Every int-returning call returns 0 or a negative QX_E… code (qinx/error.h)
 * and sets the per-thread message; out-parameters come last. */
#ifndef QINX_CORE_H
#define QINX_CORE_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
