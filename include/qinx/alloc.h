/* qinx/alloc.h — the one allocator seam.
 *
 * All memory the library allocates goes through these hooks, so a program can
 * plug in its own allocator and tests can inject out-of-memory failures.
 * Install hooks before any other qinx call; qx_set_allocator is not
 * thread-safe with respect to concurrent allocations.
 */
#ifndef QINX_ALLOC_H
#define QINX_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qx_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} qx_allocator;

/* Replace the allocator (NULL restores malloc/realloc/free). */
void qx_set_allocator(const qx_allocator *a);

/* Free memory returned to the caller by a qinx call (result arrays, loaded
 * vector files, JSON strings). NULL-safe. */
void qx_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
