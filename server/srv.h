/* server/srv.h — the server's internal types: configuration, the collection
 * registry, collections, rebuild jobs and metrics (not installed).
 *
 * Locking order (outer to inner): registry rwlock -> collection wmu (writers,
 * checkpoints, rebuild swaps) -> collection rw (write side only while the
 * in-memory store/index is changed; searches take the read side) ->
 * collection job_mu. The drift monitor's mon_mu is innermost (taken under
 * wmu by writers, alone by readers). WAL fsync happens after wmu is released
 * (group commit).
 */
#ifndef QXS_SRV_H
#define QXS_SRV_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "qinx/ivf.h"
#include "rowmap.h"
#include "store.h"
#include "wal.h"
#include "wal_codes.h"

#define QXS_DEFAULT_PORT 6333
#define QXS_DEFAULT_MAX_BODY (32u << 20)   /* 32 MiB */
#define QXS_MAX_BATCH 65536                /* points per upsert / ids per delete */
#define QXS_MAX_SEARCH_BATCH 1024          /* searches per search/batch request */
#define QXS_SEARCH_LIMIT_DEFAULT 10        /* a search's 'limit' when absent */
/* numbers one search reply may hold: Σ limit × (2 + d if with_vector) over its
 * searches (about 20 bytes of JSON and 64 bytes of jansson objects each) */
#define QXS_MAX_REPLY_VALUES 8000000
#define QXS_MAX_COLLECTIONS 1024
#define QXS_WAL_CHECKPOINT_BYTES (64u << 20) /* seal the mutable segment when the log passes this */
#define QXS_MAX_JOBS_KEPT 32               /* finished rebuild jobs remembered */
#define QXS_MAX_SHARDED 64                 /* --sharded collections */
#define QXS_EMEMLIMIT (-100)               /* server-only code: a write past --memory-limit (HTTP 507) */

typedef enum { QXS_EUCLID = 0, QXS_COSINE = 1, QXS_DOT = 2 } qxs_distance;

typedef enum {
    QXS_LOG_ALWAYS = -1, /* start-up / shutdown lines, printed at every level (as INFO) */
    QXS_LOG_ERROR = 0, QXS_LOG_WARN = 1, QXS_LOG_INFO = 2, QXS_LOG_DEBUG = 3
} qxs_log_level;

typedef struct qxs_config {
    char host[64];
    int port;
    char data[PATH_MAX];
    int threads;
    char api_key[256];
    size_t max_body;
    int log_level;
    int rebuild_threads; /* OpenMP/BLAS threads a rebuild may use (0 = all) */
    size_t memory_limit; /* --memory-limit: writes that would pass it get 507 (0 = none) */
    size_t checkpoint_bytes; /* --checkpoint-bytes: seal the mutable segment past this log size */
    int max_conns;       /* open connections in all (--max-connections) */
    int max_conns_per_client; /* per client address (--max-connections-per-client) */
    int header_timeout;  /* s: a request head must arrive whole within this (--header-timeout) */
    int idle_timeout;    /* s: no progress on a body, reply or keep-alive for this closes (--idle-timeout) */
    /* --sharded NAME=MANIFEST: read-only collections served from a sharded index (sharded.c) */
    struct {
        char name[65];
        char manifest[PATH_MAX];
    } sharded[QXS_MAX_SHARDED];
    size_t nsharded;
} qxs_config;

#define QXS_DEFAULT_MAX_CONNS 1000
#define QXS_DEFAULT_MAX_CONNS_PER_CLIENT 256
#define QXS_DEFAULT_HEADER_TIMEOUT 10
#define QXS_DEFAULT_IDLE_TIMEOUT 60

typedef enum {
    QXS_JOB_QUEUED = 0, QXS_JOB_RUNNING, QXS_JOB_SUCCEEDED, QXS_JOB_REJECTED, QXS_JOB_FAILED,
    QXS_JOB_CANCELED
} qxs_job_state;

typedef struct qxs_job {
    uint64_t id;
    qxs_job_state state;  /* under the collection's job_mu */
    char stage[48];
    double progress;      /* 0..1 */
    double t_created, t_start, t_end;
    char *report;         /* JSON text, set when the job ends */
    char error[256];
    /* parameters */
    size_t bytes, nlist, train_size;
    double min_recall;
    struct qxs_job *next; /* newer first */
} qxs_job;

/* Called under the collection's write lock for every point change, replay
 * included, in log order (the payload indexes of the API layer). */
#define QXS_HOOK_PUT 1
#define QXS_HOOK_DEL 2
typedef void (*qxs_point_hook)(void *ctx, int op, const qxs_pid *id, int64_t rowkey, const uint8_t *payload,
                               uint32_t plen);

typedef struct qxs_coll {
    char name[65];
    char dir[PATH_MAX];
    size_t d;
    qxs_distance distance;
    int quant_kind;       /* QX_QUANT_RQ, QX_QUANT_QINCO or QX_QUANT_FASTSCAN */
    size_t bytes, nlist;  /* 0 = automatic nlist */
    int fs_product;       /* fastscan: 4-bit steps product-shaped (1) or residual (0) */
    size_t fs_steps;      /* fastscan: 4-bit steps, 0 = as many as half the bytes hold */
    double min_recall;    /* gate threshold on held-out 10-recall@10 */
    double created;
    int on_disk;          /* sealed raw vectors read through the page cache (1) or kept in RAM (0) */
    size_t indexing_threshold; /* unindexed points that start a rebuild by themselves (0 = off) */

    _Atomic int refs;
    _Atomic int dropped;
    _Atomic int failed;   /* WAL I/O failed or corrupt: read-only ("red") until repaired and restarted */
    char red_reason[512]; /* why, when failed (set once, before failed) */

    pthread_mutex_t wmu;
    pthread_rwlock_t rw;
    qxs_store store;      /* segments: see store.h */
    qx_ivf *ivf;          /* keyed by row keys (segment.h) */
    qxs_rowmap *rowmap;   /* ivf's id -> location map (freed after ivf) */
    int ivf_dirty;        /* the model (not the entries: those are in the segments'
                           * codes files) changed since index-<gen>.qx was written (under wmu) */
    /* payload indexes: owned by the API layer (payload_indexes.c), NULL
     * until first used, freed with the collection by qxs_pidxset_free */
    struct qxs_pidxset *pidxs;
    uint64_t ivf_gen;      /* unique per index instance (search-context cache key) */
    size_t ivf_bytes;
    uint64_t lsn;          /* last assigned, under wmu */
    qxs_wal wal;
    /* codes of the log's records (wal_codes.h), under wmu: the record being
     * applied (wc_lsn 0: none to note) and, during replay, its entries */
    qxs_wcodes wcodes;
    uint64_t wc_lsn;
    uint32_t wc_crc;
    const uint8_t *wc_use;

    /* row keys killed (old) and created (new) while a rebuild trains (under
     * wmu), replayed into the candidate before the swap, in order */
    int tracking;
    int64_t *touched;     /* pairs: old key or -1, new key or -1 */
    size_t ntouched, cap_touched;
    qxs_point_hook hook;
    void *hook_ctx;
    uint64_t last_ckpt_bytes; /* bytes the last checkpoint wrote */
    double last_ckpt_seconds;

    pthread_mutex_t job_mu;
    qxs_job *jobs;         /* newest first */
    qxs_job *active;       /* running job or NULL */
    char *last_report;     /* JSON of the last finished rebuild */

    /* live drift monitor (server/drift.c), under mon_mu */
    pthread_mutex_t mon_mu;
    struct qx_monitor *mon;
    uint64_t mon_gen;      /* ivf_gen of its reference (0: the first writes) */
    int mon_failed;
    /* automatic rebuilds (server/autoindex.c; the merger thread's own) */
    size_t auto_next;      /* unindexed points that start the next one (0: indexing_threshold) */
    uint64_t auto_drift_events; /* the monitor's drifted_events when the last one started */
} qxs_coll;

/* ---- metrics ------------------------------------------------------------- */
#define QXS_NBUCKETS 14
#define QXS_NCODES 12
#define QXS_NLABELS 24
typedef struct qxs_metrics {
    _Atomic uint64_t req[QXS_NLABELS][QXS_NCODES];
    _Atomic uint64_t hist[QXS_NLABELS][QXS_NBUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us[QXS_NLABELS];
    _Atomic uint64_t rebuild_started, rebuild_ok, rebuild_rejected, rebuild_failed;
    _Atomic uint64_t wal_fsyncs, points_upserted, points_deleted, searches;
    _Atomic uint64_t conn_evicted, conn_refused, conn_timeouts; /* the HTTP edge (http.c) */
} qxs_metrics;

typedef struct qxs_sharded_coll qxs_sharded_coll; /* sharded.c */

typedef struct qxs_server {
    qxs_config cfg;
    qxs_sharded_coll *sharded; /* nsharded of them, fixed before the server is ready */
    size_t nsharded;
    pthread_rwlock_t reg_rw;
    qxs_coll **colls;
    size_t ncolls, cap;
    _Atomic int ready;
    _Atomic int stopping;
    _Atomic uint64_t next_job;
    _Atomic uint64_t ivf_gen;
    _Atomic int active_requests;
    _Atomic int rebuilds_running;
    qxs_metrics m;
    double t_start;
} qxs_server;

/* ---- logging (log.c) ----------------------------------------------------- */
extern int qxs_log_level_cur;
void qxs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Live drift monitoring (server/drift.c). observe: under wmu, after an
 * upsert is applied. status: 1 and *st filled if the collection has a
 * monitor. json: the "drift" object of GET /collections/{name}. */
struct qx_monitor_status;
void qxs_drift_observe(qxs_coll *c, const float *x, size_t n);
void qxs_drift_index_changed(qxs_coll *c); /* under wmu, after c->ivf was replaced */
int qxs_drift_status(qxs_coll *c, struct qx_monitor_status *st);
struct json_t;
struct json_t *qxs_drift_json(qxs_coll *c);
int qxs_log_level_parse(const char *s);

/* ---- collections (collection.c) ------------------------------------------ */
typedef struct qxs_coll_params {
    size_t d;
    qxs_distance distance;
    int quant_kind;
    size_t bytes, nlist;
    int fs_product;            /* fastscan only: 1 = product-shaped 4-bit steps (default 0) */
    size_t fs_steps;           /* fastscan only: 4-bit steps, 0 = qxs_fs_steps4() default */
    double min_recall;
    int on_disk;               /* default 1 */
    size_t indexing_threshold; /* default QXS_INDEXING_THRESHOLD_DEFAULT */
} qxs_coll_params;
#define QXS_INDEXING_THRESHOLD_DEFAULT 0 /* automatic rebuilds off unless asked for */

const char *qxs_distance_name(qxs_distance d);
int qxs_registry_load(qxs_server *s);  /* recover every collection in data/collections */
qxs_coll *qxs_coll_get(qxs_server *s, const char *name); /* +1 ref or NULL */
void qxs_coll_put(qxs_coll *c);                           /* -1 ref */
/* Every registered collection, +1 ref each (qxs_coll_put each, then qx_free the array);
 * NULL with *n = 0 when out of memory. */
qxs_coll **qxs_coll_all_refs(qxs_server *s, size_t *n);
/* Turn c read-only ("red") with a reason (a corrupt file found: logged). */
void qxs_coll_set_red(qxs_coll *c, const char *why);
int qxs_coll_create(qxs_server *s, const char *name, const qxs_coll_params *p);
int qxs_coll_drop(qxs_server *s, const char *name);
/* Open <data>/collections/<name> (just put there, e.g. by a snapshot
 * recovery) and register it; QX_EEXIST if the name is taken. */
int qxs_coll_load(qxs_server *s, const char *name);
/* PATCH: a new optimizers_config.indexing_threshold, written to meta.json
 * (atomically, under wmu); the old value stays on failure. */
int qxs_coll_set_indexing_threshold(qxs_coll *c, size_t thr);
/* names of all collections (qx_free the array and each string) */
int qxs_coll_list(qxs_server *s, char ***names, size_t *n);

/* Upsert n points (vectors already normalised for Cosine, payloads may be
 * NULL), durable on return. Ids must be distinct within one call. */
int qxs_coll_upsert(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const float *x, const qxs_bytes *payloads,
                    size_t n, uint64_t *lsn);
int qxs_coll_delete(qxs_server *s, qxs_coll *c, const qxs_pid *ids, size_t n, uint64_t *lsn, size_t *removed);
/* Replace the whole payload of existing points (absent ids are ignored). */
int qxs_coll_set_payload(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const qxs_bytes *payloads, size_t n,
                         uint64_t *lsn, size_t *updated);
/* A point by id: vector (d floats, may be NULL) and payload (qx_free; may
 * be NULL). 0 or QX_ENOTFOUND. Takes the read lock. */
int qxs_coll_get_point(qxs_coll *c, const qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen);
/* The same by row key (as search results give them). */
int qxs_coll_get_key(qxs_coll *c, int64_t key, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen);
/* The same for callers that hold the read lock already (filter callbacks
 * inside qxs_coll_search, qxs_coll_foreach callbacks: a second rdlock could
 * deadlock behind a waiting writer). */
int qxs_coll_get_key_locked(qxs_coll *c, int64_t key, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen);
/* Exact distances ("smaller is better") of q to the rows of keys (+inf for
 * a key that is not live); caller holds the read lock. */
void qxs_coll_dist_locked(qxs_coll *c, const float *q, const int64_t *keys, size_t n, float *dist);
int qxs_coll_rowkey_live(qxs_coll *c, int64_t key); /* caller holds the read lock */
/* Visit live points under the read lock; fn non-zero stops (and is returned). */
typedef int (*qxs_coll_visit_fn)(void *ctx, const qxs_pid *id, int64_t rowkey, const uint8_t *payload,
                                  uint32_t plen);
int qxs_coll_foreach(qxs_coll *c, qxs_coll_visit_fn fn, void *ctx);
void qxs_coll_set_hook(qxs_coll *c, qxs_point_hook fn, void *ctx);
/* The same when the caller holds wmu already (payload indexes: built from a
 * scan of the stored payloads and hooked in with no write in between). */
void qxs_coll_set_hook_locked(qxs_coll *c, qxs_point_hook fn, void *ctx);
/* RAM and disk use of one collection (bytes). */
typedef struct qxs_coll_mem {
    size_t points, codes, ids, index_other, tombstones, mutable_bytes, raw_ram, disk_segments, wal;
    size_t total_ram;
} qxs_coll_mem;
void qxs_coll_memory(qxs_coll *c, qxs_coll_mem *m);
/* Sum of total_ram over the collections (for --memory-limit). */
size_t qxs_server_ram(qxs_server *s);

typedef struct qxs_search_opts {
    size_t k, nprobe, rerank;
    size_t shortlist; /* fast-scan collections: the 4-bit scan's shortlist (0 = automatic) */
    int exact;
    /* Filtered search (all optional). only_keys: score exactly these row
     * keys (the planner's few candidates). Else filter: only rows for which
     * filter(filter_ctx, rowkey) is nonzero; the IVF scan tests each
     * candidate and probes lists nearest first until k pass or max_nprobe
     * lists (0 = all) were scanned; without an IVF (or exact) every row is
     * tested. filter runs with the read lock held. */
    const int64_t *only_keys;
    size_t n_only_keys;
    /* among_keys: the rows that pass, too many to score exactly: an IVF that
     * can (not fast-scan) scores them from their codes (qx_search_params
     * only_ids) instead of probing lists; otherwise filter is used. */
    const int64_t *among_keys;
    size_t n_among_keys;
    int (*filter)(void *filter_ctx, int64_t rowkey);
    void *filter_ctx;
    size_t max_nprobe;
    size_t *filter_tested, *filter_passed; /* optional out: the IVF scan's filter counts */
    double filter_stop_below; /* the IVF scan's early stop for a correlated filter (filter_plan.c) */
} qxs_search_opts;
/* Search one query (normalised for Cosine); dist is "smaller is better"
 * (L2 or -IP); ids (and keys, may be NULL) receive the hits, *found their
 * number. *used_index says whether the IVF answered. */
int qxs_coll_search(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, qxs_pid *ids,
                    int64_t *keys, size_t *found, int *used_index);
void qxs_pidxset_free(struct qxs_pidxset *p); /* payload_indexes.c */
int qxs_coll_checkpoint(qxs_coll *c); /* caller holds wmu */
/* Background merges: fold the smallest sealed segments (at most max_bytes of
 * live raw vectors) when a collection has min_segs or more. *merged = how
 * many were folded. Takes wmu itself. */
#define QXS_MERGE_MIN_SEGS 8
#define QXS_MERGE_MAX_BYTES ((size_t)256 << 20)
int qxs_coll_merge(qxs_coll *c, size_t min_segs, size_t max_bytes, size_t *merged);
void qxs_merge_all(qxs_server *s);
extern size_t qxs_checkpoint_bytes;   /* log size that triggers a checkpoint (QXS_WAL_CHECKPOINT_BYTES) */
void qxs_checkpoint_all(qxs_server *s);
/* internal metric (L2 / IP) of a distance */
static inline int qxs_metric_of(qxs_distance d) { return d == QXS_DOT ? 1 : 0; }

/* ---- rebuilds (rebuild.c) ------------------------------------------------- */
typedef struct qxs_rebuild_params {
    size_t bytes, nlist, train_size;
    int fs_product;       /* fastscan only: the collection's shape and 4-bit steps */
    size_t fs_steps;      /* (0 = qxs_fs_steps4() default for bytes) */
    double min_recall;
    int epochs;           /* QINCo-style only: training epochs */
    double train_minutes; /* QINCo-style only: wall-clock budget */
    /* gate threshold overrides (NaN = the library's default) */
    double min_used_fraction, min_perplexity, max_drift_rejected_fraction, max_mse_ratio, max_recall_drop;
} qxs_rebuild_params;
/* The 4-bit / 8-bit split of a fast-scan collection's code, as `qinx build
 * --quantizer fastscan --bytes B [--fs-steps N] [--fs-shape product]` makes
 * it (tools/build_stream.c): M4 = fs_steps, or bytes/2 rounded down to even
 * when 0; M8 = the steps left (bytes - 1 for Euclid and Cosine, whose norm
 * byte counts, bytes for Dot) - M4/2. QX_EINVAL (message set) when fs_steps
 * is odd or outside 2..QX_FS_MAX_STEPS4, M4/2 does not fit in the steps, or
 * a product shape has M4 > d. */
int qxs_fs_split(size_t d, qxs_distance dist, size_t bytes, int product, size_t fs_steps, size_t *m4,
                 size_t *m8);

/* Start a background rebuild; *job_id. QX_EEXIST if one runs (its id in *job_id). */
int qxs_rebuild_start(qxs_server *s, qxs_coll *c, const qxs_rebuild_params *p, uint64_t *job_id);

/* Automatic rebuilds (autoindex.c), from the merger thread once a second:
 * a collection with indexing_threshold > 0 whose unindexed points pass it,
 * or whose drift monitor turned `drifted` (a new drifted event), gets the
 * rebuild POST …/rebuild would start with its defaults (DERP-gated). A
 * rejected or failed one is retried only after another indexing_threshold
 * writes, or at the next drifted event. Returns 1 when it started one. */
int qxs_autoindex_check(qxs_server *s, qxs_coll *c, uint64_t *job_id);
void qxs_autoindex_all(qxs_server *s);

/* ---- metrics (metrics.c) -------------------------------------------------- */
void qxs_metrics_observe(qxs_metrics *m, const char *label, int status, double seconds);
/* Prometheus text; qx_free the result. */
char *qxs_metrics_render(qxs_server *s, size_t *len);

#endif
