/* qinx/ivf.h — the inverted-file (IVF) index over quantizer codes.
 *
 * nlist coarse centroids (k-means); each vector goes to its nearest list,
 * and the residual to that centroid is encoded by a qx_quantizer (RQ or
 * QINCo-style). Each stored entry is: the M code bytes plus, for L2, one byte
 * of quantized reconstruction norm (||x̂||² of centroid + decoded residual,
 * 8-bit with 256 levels fitted by 1-D k-means, in the spirit of FAISS's
 * _Nqint8) — so code_size = M + 1 (M for inner product) — and a 64-bit user
 * id kept apart. Deletes swap the last entry of the list into the hole, so
 * lists never hold tombstones and need no compaction. Search: nprobe nearest lists, one look-up table per
 * query shared by all lists (<q, codeword>), a SIMD scan, a bounded heap,
 * then optional re-ranking of a shortlist by exact decoding.
 *
 * Concurrency: qx_ivf_search on a const index may run on many threads at
 * once, each with its own qx_ivf_search_ctx. Writers (add/remove)
 * must be serialized by the caller against each other and against searches
 * (e.g. a rwlock); the index takes no locks of its own.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_IVF_H
#define QINX_IVF_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

#include "qinx/quantizer.h"

QX_BEGIN_DECLS

#define QX_MAX_NLIST 1048576
#define QX_MAX_K 10000
#define QX_MAX_SHORTLIST (QX_MAX_K * 10) /* qx_search_params.shortlist at most */
#define QX_FS_SHORTLIST_PER_K 4

typedef enum qx_metric {
    QX_METRIC_L2 = 0, /* squared Euclidean distance, smaller is closer */
    QX_METRIC_IP = 1  /* inner product, larger is closer (reported as a score) */
} qx_metric;

typedef struct qx_ivf qx_ivf;
typedef struct qx_ivf_search_ctx qx_ivf_search_ctx;

typedef struct qx_ivf_opts {
    size_t nlist;      /* coarse lists (default 1024; capped at n_train/39) */
    qx_metric metric;  /* default L2 */
    int kmeans_iters;  /* coarse k-means iterations (default 20) */
    uint64_t seed;     /* default 1234 */
} qx_ivf_opts;

void qx_ivf_opts_init(qx_ivf_opts *opts);

/* A new empty index of dimension d that takes ownership of quant (trained or
 * not; qx_ivf_train trains it on residuals if it is not). On failure quant is
 * freed too. */
int qx_ivf_new(qx_ivf **out, size_t d, qx_quantizer *quant, const qx_ivf_opts *opts);
void qx_ivf_free(qx_ivf *ivf); /* NULL-safe */

/* Train the coarse quantizer and (if untrained) the residual quantizer on n
 * vectors. */
int qx_ivf_train(qx_ivf *ivf, const float *x, size_t n);

/* Progress of train/add (also forwarded to the quantizer); NULL removes it. */
void qx_ivf_set_progress(qx_ivf *ivf, qx_progress_fn fn, void *ctx);

/* Add n vectors with user ids (upsert: an id already present is replaced). */
int qx_ivf_add(qx_ivf *ivf, const float *x, const int64_t *ids, size_t n);

/* The list and code of each of n vectors, exactly as qx_ivf_add would store
 * them (codes: n x code_size bytes; lists: n entries), without adding them.
 * Both work in batches of QX_IVF_ADD_BATCH vectors from x, and a vector's
 * bytes can depend on its batch (floating-point rounding of the batch's
 * matrix products), so encoding the same batches gives the same bytes:
 * that is how the distributed build reproduces the one-process index. */
#define QX_IVF_ADD_BATCH ((size_t)16384)
int qx_ivf_encode(const qx_ivf *ivf, const float *x, size_t n, uint32_t *lists, uint8_t *codes);

/* Remove ids (unknown ids are ignored); *removed (may be NULL) receives the
 * count removed. */
int qx_ivf_remove(qx_ivf *ivf, const int64_t *ids, size_t n, size_t *removed);

/* Replace every stored id by fn(ctx, id) (codes untouched); an entry whose
 * new id is negative is removed. New ids must be distinct (QX_EINVAL). Used
 * by callers that key entries by their own row numbers when rows move. */
int qx_ivf_remap_ids(qx_ivf *ivf, int64_t (*fn)(void *ctx, int64_t id), void *ctx);
/* Give the entries of old_ids[i] the id new_ids[i] (codes and lists
 * untouched; absent old ids are skipped). New ids must not be in use. */
int qx_ivf_rename_ids(qx_ivf *ivf, const int64_t *old_ids, const int64_t *new_ids, size_t n);

#define QX_COARSE_FLAT ((size_t)-1)

typedef struct qx_search_params {
    size_t nprobe;  /* lists visited (default 16, capped at nlist) */
    size_t rerank;  /* shortlist re-ranked by exact decoding (0 = off); ignored
                     * by fast-scan indexes, whose second stage always re-ranks */
    size_t shortlist; /* fast-scan indexes: candidates kept by the 4-bit scan and
                     * re-ranked with the whole code (0 = automatic:
                     * QX_FS_SHORTLIST_PER_K × k); ignored by other kinds. The
                     * HTTP search "params" map onto this struct. */
    int threads;    /* threads for a batch of queries: 0 = all cores, 1 = caller only */
    size_t coarse_groups; /* fast-scan L2 indexes with nlist >= 256 choose lists in two
                     * levels: the centroids are grouped (about √nlist groups), and
                     * only the centroids of the coarse_groups best groups are
                     * scored (0 = automatic: groups / 4 + nprobe / 2; QX_COARSE_FLAT =
                     * score every centroid). Ignored by other indexes and by
                     * filtered searches, which score every centroid. */
    /* Filtered search (optional): only ids for which filter(filter_ctx, id)
     * returns nonzero may be results; it is called for the candidates that
     * would enter the shortlist. The lists are visited nearest first; after
     * nprobe lists the search goes on, list by list, until max(k, rerank) ids
     * passed and about as many passing ids were scanned as an unfiltered
     * search scans in nprobe lists (estimated from the pass rate of the
     * tested candidates), or max_nprobe lists were visited (0 = every list).
     * So a reply is short only when fewer than k ids in those lists pass, and
     * the recall stays near the unfiltered one at the cost of ~1/pass rate
     * more scanning. filter runs on the searching thread(s) and must be safe
     * to call concurrently. */
    int (*filter)(void *filter_ctx, int64_t id);
    void *filter_ctx;
    size_t max_nprobe;
    /* Search among these ids only (optional, n_only_ids of them; ids the
     * index does not hold are skipped; the caller removes duplicates): no
     * lists are probed, each id is scored from its stored code as a list
     * scan would score it, and the best k (re-ranked as usual) are kept.
     * nprobe, filter and max_nprobe are then ignored. Meant for a filter the
     * caller can enumerate (a payload index) whose points are too many to
     * score exactly and may lie anywhere: probing nearest lists first finds
     * few of them when the filter is correlated with the vectors. Cost:
     * n_only_ids scattered code reads. Not for fast-scan indexes
     * (QX_EINVAL). */
    const int64_t *only_ids;
    size_t n_only_ids;
    size_t *lists_visited; /* optional out: lists scanned (the last query's, for nq = 1) */
    /* optional out (the last query's, for nq = 1): in the first nprobe
     * lists (near the query), the candidates tested by filter and how many
     * passed. Far fewer passing near the query than in the whole set says
     * the filter is correlated with the vectors: the passing points lie
     * far off, where probing finds them late and the codes rank them
     * poorly (a caller may then score them exactly). */
    size_t *filter_tested, *filter_passed;
    /* optional: with a filter, stop after the first nprobe lists when fewer
     * than this fraction of the candidates tested there (at least
     * QX_FILTER_STOP_MIN_TESTED of them) passed, for a caller that then
     * searches the passing points another way (the counts above tell it);
     * 0 = never stop early. */
    double filter_stop_below;
} qx_search_params;

#define QX_FILTER_STOP_MIN_TESTED 32

void qx_search_params_init(qx_search_params *p);

int qx_ivf_search_ctx_new(qx_ivf_search_ctx **out, const qx_ivf *ivf);
void qx_ivf_search_ctx_free(qx_ivf_search_ctx *ctx);

/* k nearest neighbours of nq queries: dist and ids are nq*k, caller-owned,
 * sorted best first, padded with +inf (L2) / -inf (IP) and id -1.
 * ctx may be NULL (one is made for the call). */
int qx_ivf_search(const qx_ivf *ivf, qx_ivf_search_ctx *ctx, const float *queries, size_t nq,
                  size_t k, const qx_search_params *params, float *dist, int64_t *ids);

/* Where the time of fast-scan searches goes: seconds per phase (TSC), summed
 * over the queries searched on the calling thread while a profile is
 * installed (coarse: centroid scores and probe selection; lut: the 4-bit
 * table and its 8-bit quantization; scan: the block scans and the
 * shortlist; refine: the second stage and the results). Meant for
 * single-threaded measurement (threads = 1); costs a few clock reads per
 * query. */
typedef struct qx_search_profile {
    double coarse, lut, scan, refine;
    size_t queries;
} qx_search_profile;

/* Install (or with NULL remove) the calling thread's profile. */
void qx_ivf_profile_thread(qx_search_profile *prof);

/* Save atomically (temp file, fsync, rename) / load with full validation. */
int qx_ivf_save(const qx_ivf *ivf, const char *path);
int qx_ivf_load(const char *path, qx_ivf **out);
/* Save the model only (centroids, norm levels, quantizer, reservoir): the
 * file of qx_ivf_save with every list empty. For callers that keep the
 * entries apart (qx_ivf_get_entries) and write the model once per training. */
int qx_ivf_save_model(const qx_ivf *ivf, const char *path);

/* ---- entries as stored, and a caller's id map ------------------------------
 * A location is list << 32 | offset in the list. A caller whose ids have a
 * structure of its own (a server's dense row numbers) can keep the id ->
 * location map itself, more compactly than the index's hash map (17 bytes a
 * slot at load <= 1/2). The calls are made by writers only (add, remove,
 * rename, remap, trim) and by qx_ivf_get_entries / qx_ivf_check; get must be
 * safe to call concurrently with itself. */
typedef struct qx_ivf_locator {
    int (*get)(void *ctx, int64_t id, uint64_t *loc); /* 1 and *loc if id is held, else 0 */
    int (*put)(void *ctx, int64_t id, uint64_t loc);  /* insert or overwrite: 0 or QX_ENOMEM */
    void (*del)(void *ctx, int64_t id);               /* id left the index */
    void *ctx;
} qx_ivf_locator;

/* From now on keep the map in loc (all three calls set): every entry held
 * is put into it, then the index frees its own map. On failure the index
 * keeps its own map (loc may hold part of the entries). loc is copied; its
 * ctx must outlive the index. */
int qx_ivf_set_locator(qx_ivf *ivf, const qx_ivf_locator *loc);

/* The stored entries of n ids: lists[i] = the list holding ids[i]
 * (UINT32_MAX when absent) and its code_size code bytes at codes +
 * i * code_size (zeros when absent). May run concurrently with searches. */
int qx_ivf_get_entries(const qx_ivf *ivf, const int64_t *ids, size_t n, uint32_t *lists, uint8_t *codes);

/* Add entries already encoded, as qx_ivf_get_entries gives them (list
 * UINT32_MAX: skipped); an id already held is replaced, as in qx_ivf_add.
 * A list number >= nlist is QX_EINVAL (checked before anything is added). */
int qx_ivf_add_entries(qx_ivf *ivf, const uint32_t *lists, const uint8_t *codes, const int64_t *ids, size_t n);

/* Make room for add[l] more entries in each list l (exact capacity, one
 * allocation a list), before a bulk qx_ivf_add_entries whose list counts are
 * known: no growth copies, and no slack left to trim. No-op for the
 * fast-scan kind (its blocks grow their own way). QX_ENOMEM leaves every
 * list as it was or larger. Not concurrent with searches or writes. */
int qx_ivf_reserve_lists(qx_ivf *ivf, const size_t *add);

/* Bulk add at start-up of n stored records of `stride` bytes each: {u32
 * list (UINT32_MAX: none), code_size code bytes}, record r with id id0 + r,
 * skipped when bit r of skip (may be NULL) is set. The ids must not be held
 * (a held id is QX_EINVAL). Every list number is checked first (QX_EINVAL,
 * nothing added); lists grow to their exact size. On `threads` threads
 * (0: all), each filling its own lists in record order, so the result is
 * the same as adding the records one by one; with a locator
 * (qx_ivf_set_locator) its put is then called concurrently for distinct
 * ids. The fast-scan kind and an index with its own id map run on one
 * thread. Not concurrent with anything else on ivf. */
int qx_ivf_add_records(qx_ivf *ivf, const uint8_t *rec, size_t stride, size_t n, int64_t id0,
                       const uint64_t *skip, int threads);

/* Give back list capacity beyond each list's size (after a bulk add). */
int qx_ivf_trim(qx_ivf *ivf);

typedef struct qx_ivf_info {
    size_t d, nlist, ntotal, M, code_size; /* code_size = bytes per vector, id excluded */
    qx_metric metric;
    qx_quant_kind quant_kind;
    size_t list_min, list_max; /* list sizes */
    size_t bytes;              /* memory held by lists and codebooks */
} qx_ivf_info;

int qx_ivf_get_info(const qx_ivf *ivf, qx_ivf_info *info);
const qx_quantizer *qx_ivf_quantizer(const qx_ivf *ivf);
const float *qx_ivf_centroids(const qx_ivf *ivf); /* nlist * d */

/* The reservoir sample of the training vectors (kept at train time, saved
 * with the index): the reference for DERP drift checks. NULL if none. */
struct qx_derp_reservoir;
const struct qx_derp_reservoir *qx_ivf_reservoir(const qx_ivf *ivf);

/* Nearest list of each of n vectors, and their residuals x - c_list
 * (res: n*d floats, may be NULL). */
/* The centroid of each of n lists (out: n*d floats, caller-owned): the
 * contexts of vectors in those lists (qx_quantizer_encode_ctx). Lists must be
 * < nlist. */
void qx_ivf_centroid_rows(const qx_ivf *ivf, const uint32_t *lists, size_t n, float *out);
int qx_ivf_residuals(const qx_ivf *ivf, const float *x, size_t n, uint32_t *list, float *res);

/* Structural invariants (every id in exactly one list, sizes add up, codes in
 * range); 0 or QX_EINTERNAL with the broken rule in qx_last_error(). */
int qx_ivf_check(const qx_ivf *ivf);

QX_END_DECLS
#endif
