/* server/srv.h — the server's internal types: configuration, the collection
 * registry, collections, rebuild jobs and metrics (not installed).
 *
 * Locking order (outer to inner): registry rwlock -> collection wmu (writers,
 * checkpoints, rebuild swaps) -> collection rw (write side only while the
 * in-memory store/index is changed; searches take the read side) ->
 * collection job_mu. WAL fsync happens after wmu is released (group commit).
 */
#ifndef QXS_SRV_H
#define QXS_SRV_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "qinx/ivf.h"
#include "points_meta.h"
#include "store.h"
#include "wal.h"

/* change hook of a collection (qxs_coll_set_hook below) */
#define QXS_HOOK_PUT 1
#define QXS_HOOK_DEL 2
typedef void (*qxs_point_hook)(void *ctx, int op, const qxs_pid *id, int64_t rowkey, const uint8_t *payload,
                               uint32_t plen);

#define QXS_DEFAULT_PORT 6333
#define QXS_DEFAULT_MAX_BODY (32u << 20)   /* 32 MiB */
#define QXS_MAX_BATCH 65536                /* points per upsert / ids per delete */
#define QXS_MAX_SEARCH_BATCH 1024          /* searches per search/batch request */
#define QXS_SEARCH_LIMIT_DEFAULT 10        /* a search's 'limit' when absent */
/* numbers one search reply may hold: Σ limit × (2 + d if with_vector) over its
 * searches (about 20 bytes of JSON and 64 bytes of jansson objects each) */
#define QXS_MAX_REPLY_VALUES 8000000
#define QXS_MAX_COLLECTIONS 1024
#define QXS_WAL_CHECKPOINT_BYTES (256u << 20) /* snapshot + new log above this */
#define QXS_MAX_JOBS_KEPT 32               /* finished rebuild jobs remembered */

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
} qxs_config;

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

typedef struct qxs_coll {
    char name[65];
    char dir[PATH_MAX];
    size_t d;
    qxs_distance distance;
    int quant_kind;       /* QX_QUANT_RQ (qinco accepted only when available) */
    size_t bytes, nlist;  /* 0 = automatic nlist */
    double min_recall;    /* gate threshold on held-out 10-recall@10 */
    double created;

    _Atomic int refs;
    _Atomic int dropped;
    _Atomic int failed;   /* WAL I/O failed: read-only until restart */

    pthread_mutex_t wmu;
    pthread_rwlock_t rw;
    qxs_store store;
    qxs_pmeta pm;          /* point ids and payloads by row key (points_meta.h) */
    qxs_point_hook hook;   /* change hook and its context (qxs_coll_set_hook) */
    void *hook_ctx;
    /* payload indexes: owned by the API layer (payload_indexes.c), freed with
     * the collection by qxs_pidxset_free */
    struct qxs_pidxset *pidxs;
    qx_ivf *ivf;
    uint64_t ivf_gen;      /* unique per index instance (search-context cache key) */
    size_t ivf_bytes;
    uint64_t lsn;          /* last assigned, under wmu */
    qxs_wal wal;

    /* ids written while a rebuild trains (under wmu), replayed into the
     * candidate before the swap */
    int tracking;
    int64_t *touched;
    size_t ntouched, cap_touched;

    pthread_mutex_t job_mu;
    qxs_job *jobs;         /* newest first */
    qxs_job *active;       /* running job or NULL */
    char *last_report;     /* JSON of the last finished rebuild */
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
} qxs_metrics;

typedef struct qxs_server {
    qxs_config cfg;
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
int qxs_log_level_parse(const char *s);

/* ---- collections (collection.c) ------------------------------------------ */
typedef struct qxs_coll_params {
    size_t d;
    qxs_distance distance;
    int quant_kind;
    size_t bytes, nlist;
    double min_recall;
} qxs_coll_params;

const char *qxs_distance_name(qxs_distance d);
int qxs_registry_load(qxs_server *s);  /* recover every collection in data/collections */
qxs_coll *qxs_coll_get(qxs_server *s, const char *name); /* +1 ref or NULL */
void qxs_coll_put(qxs_coll *c);                           /* -1 ref */
int qxs_coll_create(qxs_server *s, const char *name, const qxs_coll_params *p);
int qxs_coll_drop(qxs_server *s, const char *name);
/* Open <data>/collections/<name> (just put there, e.g. by a snapshot
 * recovery) and register it; QX_EEXIST if the name is taken. */
int qxs_coll_load(qxs_server *s, const char *name);
/* names of all collections (qx_free the array and each string) */
int qxs_coll_list(qxs_server *s, char ***names, size_t *n);

/* ---- points (contract with the storage work, /work/team/iface-storage-qdrant.md) ----
 * Every write is durable on return (WAL fsync). Row keys are the int64 the
 * IVF index sees; they are the store's business (a point's key may change
 * when it is re-written). */
#define QXS_EMEMLIMIT (-100) /* a write past --memory-limit (answered 507) */
/* Upsert n points (vectors normalised for Cosine; ids distinct); payloads may
 * be NULL (none). */
int qxs_coll_upsert(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const float *x, const qxs_bytes *payloads,
                    size_t n, uint64_t *lsn);
int qxs_coll_delete(qxs_server *s, qxs_coll *c, const qxs_pid *ids, size_t n, uint64_t *lsn, size_t *removed);
/* Replace whole payloads (one WAL record); absent ids are ignored, *updated
 * counts the others. */
int qxs_coll_set_payload(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const qxs_bytes *payloads, size_t n,
                         uint64_t *lsn, size_t *updated);
/* A point by id / by row key: vector (d floats, or vec NULL) and payload
 * (*payload qx_free'd by the caller, NULL when it has none; payload may be
 * NULL). 0 or QX_ENOTFOUND. Take the read lock themselves; the _locked form
 * is for callers that hold it (filter callbacks inside qxs_coll_search,
 * qxs_coll_foreach callbacks). */
int qxs_coll_get_point(qxs_coll *c, const qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen);
int qxs_coll_get_key(qxs_coll *c, int64_t rowkey, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen);
int qxs_coll_get_key_locked(qxs_coll *c, int64_t rowkey, qxs_pid *id, float *vec, uint8_t **payload,
                            uint32_t *plen);
/* Every live point, under the read lock; fn returning nonzero stops (and is
 * returned). */
typedef int (*qxs_point_fn)(void *ctx, const qxs_pid *id, int64_t rowkey, const uint8_t *payload, uint32_t plen);
int qxs_coll_foreach(qxs_coll *c, qxs_point_fn fn, void *ctx);
/* Change hook (payload indexes): called under the write lock for every put
 * and delete, replay included, in log order; a re-written point is a DEL of
 * its old key then a PUT of its new one. */
void qxs_coll_set_hook(qxs_coll *c, qxs_point_hook fn, void *ctx);
int qxs_coll_rowkey_live(qxs_coll *c, int64_t rowkey);
/* Exact distances ("smaller is better") of q to rowkeys (absent: +inf);
 * caller holds the read lock. */
void qxs_coll_dist_locked(qxs_coll *c, const float *q, const int64_t *rowkeys, size_t n, float *dist);

typedef struct qxs_search_opts {
    size_t k, nprobe, rerank;
    int exact;
    /* Filtered search (all optional). only_keys: score exactly these row
     * keys (the planner's few candidates). Else filter: only rows for which
     * filter(filter_ctx, rowkey) is nonzero; the IVF scan tests each
     * candidate and probes lists nearest first until k pass or max_nprobe
     * lists (0 = all) were scanned; without an IVF (or exact) every row is
     * tested. filter runs with the read lock held. */
    const int64_t *only_keys;
    size_t n_only_keys;
    int (*filter)(void *filter_ctx, int64_t rowkey);
    void *filter_ctx;
    size_t max_nprobe;
} qxs_search_opts;
/* Search one query (normalised for Cosine); dist is "smaller is better"
 * (L2 or -IP); ids (and rowkeys, may be NULL) of the *found results.
 * *used_index says whether the IVF answered. */
int qxs_coll_search(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, qxs_pid *ids,
                    int64_t *rowkeys, size_t *found, int *used_index);
void qxs_pidxset_free(struct qxs_pidxset *p); /* payload_indexes.c */
int qxs_coll_checkpoint(qxs_coll *c); /* caller holds wmu */
void qxs_checkpoint_all(qxs_server *s);
/* internal metric (L2 / IP) of a distance */
static inline int qxs_metric_of(qxs_distance d) { return d == QXS_DOT ? 1 : 0; }

/* ---- rebuilds (rebuild.c) ------------------------------------------------- */
typedef struct qxs_rebuild_params {
    size_t bytes, nlist, train_size;
    double min_recall;
    int epochs;           /* QINCo-style only: training epochs */
    double train_minutes; /* QINCo-style only: wall-clock budget */
    /* gate threshold overrides (NaN = the library's default) */
    double min_used_fraction, min_perplexity, max_drift_rejected_fraction, max_mse_ratio, max_recall_drop;
} qxs_rebuild_params;
/* Start a background rebuild; *job_id. QX_EEXIST if one runs (its id in *job_id). */
int qxs_rebuild_start(qxs_server *s, qxs_coll *c, const qxs_rebuild_params *p, uint64_t *job_id);

/* ---- metrics (metrics.c) -------------------------------------------------- */
void qxs_metrics_observe(qxs_metrics *m, const char *label, int status, double seconds);
/* Prometheus text; qx_free the result. */
char *qxs_metrics_render(qxs_server *s, size_t *len);

#endif
