/* qinx/error.h — error codes and the per-thread last-error message.
 *
 * Every qinx call that can fail returns an int: 0 on success or one of the
 * negative QX_E* codes below. The human-readable reason of the most recent
 * failure on the calling thread is kept in thread-local storage and returned
 * by qx_last_error(); it names the file, record, parameter or limit involved.
 * Thread-safety: all functions here may be called concurrently.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_ERROR_H
#define QINX_ERROR_H

#include "qinx/defs.h"

QX_BEGIN_DECLS

enum {
    QX_OK = 0,
    QX_EINVAL = -1,    /* invalid argument (k <= 0, NaN in a vector, bad option) */
    QX_ENOMEM = -2,    /* an allocation failed or a size overflowed */
    QX_EIO = -3,       /* open/read/write/fsync/rename failed */
    QX_EFORMAT = -4,   /* a file is truncated, corrupt or of the wrong kind */
    QX_EDIM = -5,      /* dimension mismatch or dimension out of range */
    QX_ESTATE = -6,    /* the object is not in a state for this call (untrained …) */
    QX_ENOTFOUND = -7, /* unknown id, collection or file */
    QX_EEXIST = -8,    /* the thing already exists */
    QX_EFAISS = -9,    /* FAISS raised an exception (message kept) */
    QX_ECANCELED = -10,/* stopped by a time budget or a cancel request */
    QX_EGATE = -11,    /* a DERP gate rejected a candidate index */
    QX_ELIMIT = -12,   /* a documented limit was exceeded */
    QX_EINTERNAL = -13 /* a broken invariant (a bug): please report */
};

/* Static description of an error code ("invalid argument", …). Never NULL. */
const char *qx_strerror(int code);

/* Message of the last failure on this thread, "" when none. The pointer is
 * valid until the next failing qinx call on the same thread. */
const char *qx_last_error(void);

/* Forget the last error on this thread. */
void qx_clear_error(void);

/* For programs built on qinx (the server, the CLI): record their own failure
 * in the same per-thread message (printf-style fmt) and return code, so that
 * `return qx_error_set(QX_EINVAL, "k=%d", k);` reads like the library's own
 * failure paths and qx_last_error() reports whichever failed last. */
int qx_error_set(int code, const char *fmt, ...) QX_PRINTF_FORMAT(2, 3);

QX_END_DECLS
#endif
