/* server/store.h — a collection's points: sealed segments on disk, one
 * mutable segment in RAM, the manifest that names them (segment.h,
 * manifest.h), exact search over them, and checkpoints.
 *
 * Points are addressed two ways: by user id (qxs_pid) and by row key (the
 * IVF's id, segment << 32 | row). At most one row per id is live; rows are
 * append-only and a rewrite kills the old row (tombstone).
 *
 * Not thread-safe: the collection's locks guard it (writers serialized by
 * wmu; searches read under the read side of rw, and every change of the
 * in-memory structures happens under its write side).
 */
#ifndef QXS_STORE_H
#define QXS_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "qinx/ivf.h"
#include "manifest.h"
#include "pointid.h"
#include "segment.h"

typedef struct qxs_store {
    size_t d;
    int on_disk;          /* sealed raw vectors read through mmap (1) or copied to RAM (0) */
    char dir[PATH_MAX];
    qxs_seg **segs;       /* sealed, ascending segment number */
    size_t nsegs, cap_segs;
    qxs_mseg mut;         /* number mut.no = the manifest's next_seg */
    uint64_t lsn;         /* log position the manifest covers */
    uint64_t index_gen;   /* index-<gen>.qx named by the manifest (0: none) */
    int man_version;      /* of the manifest read at open (1: index file with every entry) */
    size_t n_live;
} qxs_store;

/* Open dir's MANIFEST and its segments (no raw vectors are read when
 * on_disk). *fresh = 1 when there was no manifest (empty store, segment 1). */
int qxs_store_open(qxs_store *s, const char *dir, size_t d, int on_disk, int *fresh);
void qxs_store_free(qxs_store *s);

/* Room in the mutable segment for `more` points with pbytes payload bytes. */
int qxs_store_reserve(qxs_store *s, size_t more, size_t pbytes);
/* Live row key of id, or -1. */
int64_t qxs_store_find(const qxs_store *s, const qxs_pid *id);
/* Upsert n points after qxs_store_reserve (cannot fail). For each point,
 * old_keys[i] = the row it replaced or -1, new_keys[i] = its new row.
 * p may be NULL (no payloads). */
void qxs_store_upsert(qxs_store *s, const qxs_pid *ids, const float *x, const qxs_bytes *p, size_t n,
                      int64_t *old_keys, int64_t *new_keys);
/* Kill the live rows of ids; old_keys[i] = killed row or -1. */
void qxs_store_delete(qxs_store *s, const qxs_pid *ids, size_t n, int64_t *old_keys, size_t *removed);

int qxs_store_live(const qxs_store *s, int64_t key);     /* 1 when key is a live row */
const float *qxs_store_vec(const qxs_store *s, int64_t key);     /* NULL if no such row */
int qxs_store_pid(const qxs_store *s, int64_t key, qxs_pid *id); /* 0 or -1 */
const uint8_t *qxs_store_payload(const qxs_store *s, int64_t key, uint32_t *len);
/* Vector of a live id (NULL if absent). */
const float *qxs_store_get(const qxs_store *s, const qxs_pid *id);

/* Visit every live row (oldest segment first); fn non-zero stops (returned). */
typedef int (*qxs_store_visit_fn)(void *ctx, int64_t key, const qxs_pid *id, const float *vec,
                                   const uint8_t *payload, uint32_t plen);
int qxs_store_foreach(const qxs_store *s, qxs_store_visit_fn fn, void *ctx);
/* Row count of the segment holding key's rows, and how many rows exist in all
 * (live or dead): the range a rebuild samples from. */
size_t qxs_store_rows(const qxs_store *s);
/* The r-th row over all segments in order (0 <= r < qxs_store_rows): its key. */
int64_t qxs_store_row_key(const qxs_store *s, size_t r);

/* Exact k nearest live rows of one query: metric 0 = L2 (ascending), 1 =
 * inner product (dist = -<q,x>). dist/keys have k entries, padded +inf / -1. */
int qxs_store_search(const qxs_store *s, const float *q, size_t k, int metric, float *dist, int64_t *keys,
                     size_t *found);
/* Exact distances of q to rows (re-ranking); dead or unknown rows get +inf. */
void qxs_store_dist(const qxs_store *s, const float *q, int metric, const int64_t *keys, size_t n, float *dist);

/* Checkpoint in two steps. prepare (no lock needed against searches: it only
 * reads) writes the mutable segment as a sealed file, the changed tombstone
 * files, the codes files (segcodes.h) of the segments that have none for
 * index_gen (when ivf is not NULL: the sealed one, a merge's output, or all
 * after a rebuild), and the manifest {lsn, index_gen}: the commit point. commit (under
 * the collection's write lock) swaps the sealed copy in and starts a new
 * mutable segment; cleanup removes files no manifest names any more.
 * *bytes receives the bytes written. */
typedef struct qxs_ckpt {
    qxs_seg *sealed;  /* the mutable segment, sealed (or NULL when it was empty) */
    uint64_t bytes;   /* bytes written: segment file, tombstone files, manifest */
} qxs_ckpt;
int qxs_store_ckpt_prepare(qxs_store *s, uint64_t lsn, uint64_t index_gen, const qx_ivf *ivf, qxs_ckpt *ck);
/* Add the entries of the sealed segments' codes files to ivf (the model of
 * index_gen, loaded): restart reads codes, not raw vectors. Dead rows are
 * skipped. Every file is checked before any entry is added
 * (qxs_codes_load_all); rm (may be NULL) is the index's row map, reserved at
 * each segment's size. Errors name the file. */
typedef struct qxs_rowmap qxs_rowmap;
int qxs_store_codes_load(const qxs_store *s, qx_ivf *ivf, qxs_rowmap *rm);
void qxs_store_ckpt_commit(qxs_store *s, qxs_ckpt *ck, uint64_t lsn, uint64_t index_gen);
/* On a failed prepare: drop what it made (the manifest was not replaced). */
void qxs_store_ckpt_abort(qxs_store *s, qxs_ckpt *ck);
/* Remove files of dir that the store's state does not name (superseded
 * tombstones and index files, segments of an interrupted checkpoint, *.tmp).
 * Only after the manifest that stopped naming them is durable. */
void qxs_store_gc(const qxs_store *s);

/* Merge: the live rows of sealed segments nos[0..k) into one new sealed
 * segment numbered new_no (written and opened by prepare, which only reads:
 * call it with writers excluded, searches may run). commit (under the write
 * lock) swaps it in for the sources, carries over rows killed since
 * prepare, and gives the row-key renames (old_keys[i] -> new_keys[i], nmoved
 * of them) for the index. The manifest is the caller's next checkpoint. */
typedef struct qxs_merge {
    qxs_seg *out;
    uint32_t *src_no;
    size_t nsrc;
    int64_t *old_keys, *new_keys;
    size_t nmoved;
    uint64_t bytes;
} qxs_merge;
int qxs_store_merge_prepare(qxs_store *s, const uint32_t *nos, size_t k, uint32_t new_no, qxs_merge *mg);
void qxs_store_merge_commit(qxs_store *s, qxs_merge *mg);
void qxs_store_merge_free(qxs_merge *mg); /* after commit, or instead of it (abort) */
/* Segments worth merging: up to cap numbers into nos (smallest first, live
 * raw bytes at most max_bytes in all); returns how many (0 or >= 2). */
size_t qxs_store_merge_pick(const qxs_store *s, size_t min_segs, size_t max_bytes, uint32_t *nos, size_t cap);

/* RAM by kind (bytes). */
typedef struct qxs_store_mem {
    size_t mutable_bytes;   /* the mutable segment (vectors, ids, payloads, map) */
    size_t tombstone_bytes; /* sealed segments' bitmaps */
    size_t raw_ram_bytes;   /* sealed raw vectors held in RAM (on_disk false) */
    size_t disk_bytes;      /* sealed segment files */
} qxs_store_mem;
void qxs_store_memory(const qxs_store *s, qxs_store_mem *m);

/* Read a snapshot.bin written by the server before segments (format
 * "QXSNAP01": [magic][u32 d][u32 0][u64 n][u64 lsn][n ids][n*d floats][u32
 * crc]) into new arrays (qx_free ids, qx_aligned_free vecs). QX_ENOTFOUND
 * when absent, QX_EFORMAT when corrupt. */
int qxs_legacy_snapshot_read(const char *path, size_t d, int64_t **ids, float **vecs, size_t *n, uint64_t *lsn);

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
