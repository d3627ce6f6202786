/* server/rowmap.h — the IVF's id -> location map for row keys (internal to
 * the server).
 *
 * Row keys are segment << 32 | row, dense within a segment, so the map is a
 * sorted array of segments, each with one 8-byte location (list << 32 |
 * offset, as qx_ivf_locator defines it) per row: 8 bytes a row, no hashing,
 * instead of the IVF's own hash map (17-byte slots at load <= 1/2, 34-68
 * bytes a point: 570 MB at 10M points). A segment's array goes when its last
 * entry does (after a merge).
 *
 * Not thread-safe: the collection's locks guard it, as they guard the index.
 * One exception, bulk mode: while bulk is set, puts of distinct rows of
 * segments reserved beforehand (qxs_rowmap_reserve) may run concurrently
 * (the load at start-up); they do not count entries, qxs_rowmap_recount
 * does afterwards.
 */
#ifndef QXS_ROWMAP_H
#define QXS_ROWMAP_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/ivf.h"

typedef struct qxs_rowmap_seg {
    uint32_t no;
    uint64_t *loc;  /* cap entries, UINT64_MAX = absent */
    size_t cap, count;
} qxs_rowmap_seg;

typedef struct qxs_rowmap {
    qxs_rowmap_seg *v; /* ascending no */
    size_t n, cap;
    int bulk;          /* see above */
} qxs_rowmap;

int qxs_rowmap_new(qxs_rowmap **out);
void qxs_rowmap_free(qxs_rowmap *m); /* NULL-safe */
/* Room for rows 0..rows-1 of segment no (exact size: bulk loads). */
int qxs_rowmap_reserve(qxs_rowmap *m, uint32_t no, size_t rows);
int qxs_rowmap_get(const qxs_rowmap *m, int64_t key, uint64_t *loc); /* 1 if held */
int qxs_rowmap_put(qxs_rowmap *m, int64_t key, uint64_t loc);        /* 0 or QX_ENOMEM */
void qxs_rowmap_del(qxs_rowmap *m, int64_t key);
size_t qxs_rowmap_bytes(const qxs_rowmap *m);
/* Count every segment's entries again (after bulk mode). */
void qxs_rowmap_recount(qxs_rowmap *m);
/* The qx_ivf_locator over m (qx_ivf_set_locator). */
qx_ivf_locator qxs_rowmap_locator(qxs_rowmap *m);
/* A new row map that takes over ivf's id map (the entries it holds move
 * in); *out is freed with (after) the index. */
int qxs_rowmap_attach(qx_ivf *ivf, qxs_rowmap **out);

#endif
