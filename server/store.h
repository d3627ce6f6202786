/* server/store.h — a collection's raw vectors: id -> row, rows packed.
 *
 * Rows are kept dense (a delete moves the last row into the hole), so an exact
 * search is one batched distance kernel over n*d floats. Not thread-safe: the
 * collection's rwlock guards it (searches read, upserts/deletes write).
 */
#ifndef QXS_STORE_H
#define QXS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/idmap.h"

/* A point's payload as the store keeps it: opaque bytes (the API puts compact
 * JSON in); len 0 = no payload. */
typedef struct qxs_bytes {
    const uint8_t *data;
    uint32_t len;
} qxs_bytes;
#define QXS_MAX_PAYLOAD 65536 /* bytes per point (the API answers 413 above) */

typedef struct qxs_store {
    size_t d, n, cap;
    int64_t *ids;  /* n ids */
    float *vecs;   /* cap*d floats, 64-byte aligned */
    qx_idmap map; /* id -> row */
} qxs_store;

void qxs_store_init(qxs_store *s, size_t d);
void qxs_store_free(qxs_store *s);
/* Make room for n more rows (so that a later upsert of n rows cannot fail). */
int qxs_store_reserve(qxs_store *s, size_t more);
/* Insert or overwrite. */
int qxs_store_upsert(qxs_store *s, const int64_t *ids, const float *x, size_t n);
/* Remove ids (absent ones are ignored); *removed may be NULL. */
void qxs_store_delete(qxs_store *s, const int64_t *ids, size_t n, size_t *removed);
/* Row of id or NULL. */
const float *qxs_store_get(const qxs_store *s, int64_t id);

/* Exact k nearest of one query: metric 0 = L2 (dist ascending),
 * 1 = inner product (dist holds -<q,x>, ascending). dist/ids have k entries,
 * padded with +inf / -1; *found receives the number of real results.
 * scratch must hold n floats (or be NULL: allocated here). */
int qxs_store_search(const qxs_store *s, const float *q, size_t k, int metric, float *dist,
                     int64_t *ids, size_t *found);

/* Exact distances of q to the given ids (re-ranking). Missing ids get +inf. */
void qxs_store_dist(const qxs_store *s, const float *q, int metric, const int64_t *ids, size_t n,
                    float *dist);

/* Snapshot: [magic "QXSNAP01"][u32 d][u32 0][u64 n][u64 lsn][ids][vecs][u32 crc]
 * written to path.tmp, fsync'ed, renamed, directory fsync'ed. */
int qxs_store_save(const qxs_store *s, uint64_t lsn, const char *path);
/* Load a snapshot into an empty store of the same d; *lsn its lsn. A missing
 * file is QX_ENOTFOUND; a corrupt one QX_EFORMAT. */
int qxs_store_load(qxs_store *s, const char *path, uint64_t *lsn);

/* Bounded max-heap top-k (smallest dist kept), shared with the IVF merge. */
typedef struct qxs_topk {
    size_t k, n;
    float *dist;
    int64_t *ids;
} qxs_topk;
void qxs_topk_push(qxs_topk *h, float dist, int64_t id);
/* Sort the kept entries ascending and pad to k; returns the count kept. */
size_t qxs_topk_finish(qxs_topk *h);

#endif
