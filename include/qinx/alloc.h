/* qinx/alloc.h — the one allocator seam.
 *
 * All memory the library allocates goes through these hooks, so a program can
 * plug in its own allocator and tests can inject out-of-memory failures.
 * Install hooks before any other qinx call; qx_set_allocator is not
 * thread-safe with respect to concurrent allocations.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_ALLOC_H
#define QINX_ALLOC_H

#include "qinx/defs.h"

#include <stddef.h>

QX_BEGIN_DECLS

typedef struct qx_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} qx_allocator;

/* Replace the allocator (NULL restores malloc/realloc/free). */
void qx_set_allocator(const qx_allocator *a);

/* Free memory returned to the caller by a qinx call (result arrays, loaded
 * vector files, JSON strings), or allocated by the calls below. NULL-safe. */
void qx_free(void *ptr);

/* Allocate through the seam, for programs that want their memory to follow
 * the same hooks (the server does). Sizes of 0 give a valid unique pointer;
 * qx_calloc returns NULL when n * size overflows. Free with qx_free. */
void *qx_malloc(size_t size);
void *qx_calloc(size_t n, size_t size);
void *qx_realloc(void *ptr, size_t size);
char *qx_strdup(const char *s);
/* 64-byte aligned block (rows of vectors and codes); free with qx_aligned_free. */
void *qx_aligned_alloc(size_t size);
void qx_aligned_free(void *ptr);

QX_END_DECLS
#endif
