/* core/alloc.c — the allocator seam (see include/qinx/alloc.h) and small
 * runtime helpers (clock, thread count, finiteness check).
 * Aligned blocks are carved out of an over-allocation through the seam, with
 * the original pointer stored just before the aligned address, so one hook
 * set serves both plain and aligned allocations. */
#define QX__ALLOW_LIBC_ALLOC
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static qx_allocator alloc_hooks = {malloc, realloc, free};

void qx_set_allocator(const qx_allocator *a) {
    if (a == NULL) {
        alloc_hooks = (qx_allocator){malloc, realloc, free};
    } else {
        alloc_hooks = *a;
    }
}

void *qx__malloc(size_t size) { return alloc_hooks.malloc_fn(size ? size : 1); }

void *qx__calloc(size_t n, size_t size) {
    size_t total;
    if (!qx__mul(n, size, &total)) return NULL;
    void *p = qx__malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void *qx__realloc(void *ptr, size_t size) {
    return alloc_hooks.realloc_fn(ptr, size ? size : 1);
}

void qx__free(void *ptr) {
    if (ptr) alloc_hooks.free_fn(ptr);
}

/* ---- the public forms (qinx/alloc.h) ---- */
void qx_free(void *ptr) { qx__free(ptr); }
void *qx_malloc(size_t size) { return qx__malloc(size); }
void *qx_calloc(size_t n, size_t size) { return qx__calloc(n, size); }
void *qx_realloc(void *ptr, size_t size) { return qx__realloc(ptr, size); }
char *qx_strdup(const char *s) { return qx__strdup(s); }
void *qx_aligned_alloc(size_t size) { return qx__aligned_alloc(size); }
void qx_aligned_free(void *ptr) { qx__aligned_free(ptr); }
double qx_now(void) { return qx__now(); }
int qx_num_threads(void) { return qx__num_threads(); }

void *qx__aligned_alloc(size_t size) {
    size_t total;
    if (!qx__add(size, 64 + sizeof(void *), &total)) return NULL;
    char *raw = qx__malloc(total);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void qx__aligned_free(void *ptr) {
    if (ptr) qx__free(((void **)ptr)[-1]);
}

char *qx__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = qx__malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

double qx__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qx__num_threads(void) {
    const char *env = getenv("QX_THREADS");
    if (env && *env) {
        int t = atoi(env);
        if (t >= 1 && t <= 256) return t;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)(n > 256 ? 256 : n) : 1;
}

long qx__first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}
