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
    struct qxs_pindex **pidx; /* payload indexes (payload_index.h); changed under wmu + rw write */
    size_t npidx;
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
#define QXS_NLABELS 23
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
/* names of all collections (qx__free the array and each string) */
int qxs_coll_list(qxs_server *s, char ***names, size_t *n);

/* One point of an upsert: its id and payload (compact JSON bytes and the
 * parsed object; len 0 / pj NULL = no payload). */
typedef struct qxs_point_in {
    qxs_pid pid;
    const char *payload;
    uint32_t len;
    const struct json_t *pj;
} qxs_point_in;

/* Upsert n points (vectors already normalised for Cosine; pids distinct),
 * durable on return. A payload whose value does not fit a payload index
 * fails the whole batch with QX_EINVAL before anything is written. */
int qxs_coll_upsert(qxs_server *s, qxs_coll *c, const qxs_point_in *pts, const float *x, size_t n,
                    uint64_t *lsn);
/* Delete by row key (qxs_pmeta_key); absent keys are ignored. */
int qxs_coll_delete(qxs_server *s, qxs_coll *c, const int64_t *keys, size_t n, uint64_t *lsn,
                    size_t *removed);
/* Replace the payloads of existing points (keys; payloads[i] NULL = none),
 * checked against the payload indexes first; one META record. */
int qxs_coll_set_payloads(qxs_server *s, qxs_coll *c, const int64_t *keys, struct json_t *const *payloads,
                          size_t n, uint64_t *lsn);
/* Payload indexes: create (built from every stored payload; QX_EINVAL with
 * the point named if one does not fit) / drop. Persisted in indexes.json. */
int qxs_coll_index_create(qxs_coll *c, const char *field, int type);
int qxs_coll_index_drop(qxs_coll *c, const char *field);
/* internal to collection.c and points_write.c */
void qxs__coll_track(qxs_coll *c, const int64_t *ids, size_t n);
int qxs__coll_maybe_checkpoint(qxs_coll *c);
int qxs__coll_pidx_check(const qxs_coll *c, const struct json_t *payload, char *err, size_t errcap);
void qxs__coll_pidx_set(qxs_coll *c, int64_t key, const struct json_t *payload);
int qxs__coll_load_indexes(qxs_coll *c);

struct qxs_filter;
typedef struct qxs_search_opts {
    size_t k, nprobe, rerank;
    int exact;
    const struct qxs_filter *filter; /* NULL = none; its conditions bound to c->pidx by the caller */
    size_t max_nprobe;               /* filtered IVF search: probe up to this many lists (0 = all) */
} qxs_search_opts;
/* Search one query (normalised for Cosine); dist is "smaller is better"
 * (L2 or -IP); *found receives the number of results. *used_index says
 * whether the IVF answered. */
int qxs_coll_search(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist,
                    int64_t *ids, size_t *found, int *used_index);
int qxs_coll_checkpoint(qxs_coll *c); /* caller holds wmu */
void qxs_checkpoint_all(qxs_server *s);
/* internal metric (L2 / IP) of a distance */
static inline int qxs_metric_of(qxs_distance d) { return d == QXS_DOT ? 1 : 0; }
/* Write text to path atomically (temp, fsync, rename, fsync dir). */
int qxs_write_file_atomic(const char *path, const char *text, size_t len);

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
/* Prometheus text; qx__free the result. */
char *qxs_metrics_render(qxs_server *s, size_t *len);

#endif
