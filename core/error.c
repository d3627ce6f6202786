/* core/error.c — the error table and the per-thread last-error message.
 * Messages are formatted into a thread-local buffer (no allocation, so an
 * out-of-memory failure can still be reported). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define QX__ERRBUF 1024

static _Thread_local char last_error[QX__ERRBUF];

const char *qx_strerror(int code) {
    switch (code) {
    case QX_OK: return "success";
    case QX_EINVAL: return "invalid argument";
    case QX_ENOMEM: return "out of memory";
    case QX_EIO: return "input/output error";
    case QX_EFORMAT: return "corrupt or truncated file";
    case QX_EDIM: return "dimension mismatch";
    case QX_ESTATE: return "object not in the right state";
    case QX_ENOTFOUND: return "not found";
    case QX_EEXIST: return "already exists";
    case QX_EFAISS: return "FAISS error";
    case QX_ECANCELED: return "canceled";
    case QX_EGATE: return "rejected by the DERP gate";
    case QX_ELIMIT: return "limit exceeded";
    case QX_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}

const char *qx_last_error(void) { return last_error; }

void qx_clear_error(void) { last_error[0] = '\0'; }

static int vset(int code, const char *fmt, va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return code;
}

int qx__fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(code, fmt, ap);
    va_end(ap);
    return code;
}

/* The same, public, for programs built on the library (qinx/error.h). */
int qx_error_set(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(code, fmt, ap);
    va_end(ap);
    return code;
}

int qx__wrap(int code, const char *fmt, ...) {
    char prefix[QX__ERRBUF], old[QX__ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation of an over-long message is intended. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
    snprintf(last_error, sizeof last_error, "%s: %s", prefix, old);
#pragma GCC diagnostic pop
    return code;
}
