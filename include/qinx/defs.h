/* qinx/defs.h — what every public header shares: the calling conventions,
 * the export marker, the C++ guards, and the limits more than one module checks.
 *
 * Conventions of every public call (each header says so):
 * 1. A call that can fail returns int: 0, or a negative QX_E… code
 *    (qinx/error.h), with the reason in qx_last_error() for this thread.
 *    Calls that cannot fail return their value (getters, kernels) or void.
 * 2. Parameter order: a `_new` call returns the object it creates through its
 *    first parameter (qx_ivf_new(&out, …)); every other call takes the object
 *    it acts on first, then its inputs, then its outputs (qx_ivf_load(path,
 *    &out), qx_quantizer_mse(q, x, n, m, &mse)). The distance kernels of
 *    qinx/kernels.h are the one exception: they are BLAS-shaped, output first.
 * 3. The caller owns buffers it passes; objects are freed by their _free
 *    (NULL-safe), memory returned by the library by qx_free.
 *
 * The library is built with hidden visibility; the declarations between
 * QX_BEGIN_DECLS and QX_END_DECLS are the only ones a shared libqinx.so
 * exports (together with the FAISS C API binding's faiss_* functions). */
#ifndef QINX_DEFS_H
#define QINX_DEFS_H

#ifdef __cplusplus
#define QX__EXTERN_C_BEGIN extern "C" {
#define QX__EXTERN_C_END }
#else
#define QX__EXTERN_C_BEGIN
#define QX__EXTERN_C_END
#endif

#if defined(__GNUC__)
#define QX_BEGIN_DECLS _Pragma("GCC visibility push(default)") QX__EXTERN_C_BEGIN
#define QX_END_DECLS QX__EXTERN_C_END _Pragma("GCC visibility pop")
#define QX_PRINTF_FORMAT(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define QX_BEGIN_DECLS QX__EXTERN_C_BEGIN
#define QX_END_DECLS QX__EXTERN_C_END
#define QX_PRINTF_FORMAT(fmt, args)
#endif

/* Largest vector dimension any call accepts (quantizers, IVF, vector files). */
#define QX_MAX_DIM 65536

#endif
