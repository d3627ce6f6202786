/* server/rebuild.c — background rebuilds: train a new IVF over RQ (or QINCo-style) codes on
 * the stored raw vectors, gate it, and swap it in without stopping searches.
 *
 * Decisions:
 * 1. Streaming: the job never copies the raw vectors. Under the writer
 *    mutex it notes the rows that exist (segment numbers and row counts; rows
 *    are append-only and a row's vector never changes) and from then on
 *    records the row keys writers kill and create. It keeps in memory only
 *    the training sample, the gate's sample and queries; it encodes the rows
 *    chunk by chunk, copying each chunk out under the read lock (searches go
 *    on; a writer waits for one memcpy at most), and computes the gate's
 *    exact neighbours in the same pass. Just before the swap the recorded
 *    kills and creations are replayed into the candidate under the writer
 *    mutex, so it misses nothing written while it trained.
 * 2. The gate (a failed gate leaves the live index serving):
 *    - held-out recall: Q stored vectors are left out of training; their exact
 *      10 nearest neighbours (self excluded) are computed by brute force and
 *      the candidate's 10-recall@10 (nprobe default, no re-ranking) must reach
 *      min_recall, and must not fall more than 0.05 below the live index's;
 *    - the library's DERP gate (qx_gate_evaluate, include/qinx/gate.h):
 *      codeword usage and perplexity per step, MSE ratio, drift against the
 *      training reservoir, recall against exact search — with its default
 *      thresholds, min_recall taken from the collection or the request.
 *    The whole report (DERP JSON + recall checks) is kept in the job, the
 *    collection (GET /collections/{name}) and report.json.
 * 3. The swap is a pointer exchange under the write side of the rwlock; the
 *    old index is freed after it, when no search can still hold it.
 */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/derp.h"
#include "qinx/gate.h"
#include "qinx/kernels.h"
#include "qinx/fastscan.h"
#include "qinx/qinco.h"
#include "qinx/rq.h"
#include "qinx/core.h"
#include "qinx/rng.h"
#include "srv.h"

#define QXS_REBUILD_MIN_POINTS 1000
#define QXS_GATE_QUERIES 200
#define QXS_GATE_K 10
#define QXS_GATE_LIVE_SLACK 0.05
#define QXS_DEFAULT_TRAIN 65536
#define QXS_GATE_SAMPLE 10000  /* vectors DERP's health and drift checks see */

typedef struct rb_arg {
    qxs_server *s;
    qxs_coll *c;
    qxs_job *j;
    qxs_rebuild_params p;
} rb_arg;

static void set_stage(qxs_coll *c, qxs_job *j, const char *stage, double progress) {
    pthread_mutex_lock(&c->job_mu);
    snprintf(j->stage, sizeof j->stage, "%s", stage);
    j->progress = progress;
    pthread_mutex_unlock(&c->job_mu);
}

typedef struct prog_ctx {
    qxs_coll *c;
    qxs_job *j;
    double base, span;
} prog_ctx;

static void on_progress(void *ctx, const char *stage, double f) {
    prog_ctx *p = ctx;
    char st[48];
    snprintf(st, sizeof st, "train: %s", stage ? stage : "");
    set_stage(p->c, p->j, st, p->base + p->span * (f < 0 ? 0 : f > 1 ? 1 : f));
}


/* 10-recall@10 of an index on the gate queries (self hits dropped). */
static int index_recall(const qx_ivf *ivf, const float *qs, const int64_t *qids, size_t nq, size_t d,
                        const int64_t *gt, double *recall) {
    size_t k = QXS_GATE_K + 1;
    float *dist = qx_malloc(nq * k * sizeof *dist);
    int64_t *res = qx_malloc(nq * k * sizeof *res);
    if (!dist || !res) {
        qx_free(dist);
        qx_free(res);
        return qx_error_set(QX_ENOMEM, "gate search");
    }
    qx_search_params sp;
    qx_search_params_init(&sp);
    sp.threads = 1;
    int rc = qx_ivf_search(ivf, NULL, qs, nq, k, &sp, dist, res);
    if (!rc) {
        size_t hits = 0;
        for (size_t i = 0; i < nq; i++) {
            size_t taken = 0;
            for (size_t j = 0; j < k && taken < QXS_GATE_K; j++) {
                int64_t id = res[i * k + j];
                if (id == qids[i]) continue;
                taken++;
                for (size_t g = 0; g < QXS_GATE_K; g++)
                    if (gt[i * QXS_GATE_K + g] == id && id >= 0) {
                        hits++;
                        break;
                    }
            }
        }
        *recall = (double)hits / (double)(nq * QXS_GATE_K);
    }
    (void)d;
    qx_free(dist);
    qx_free(res);
    return rc;
}

static void finish(rb_arg *a, qxs_job_state st, const char *report, const char *err) {
    qxs_coll *c = a->c;
    qxs_job *j = a->j;
    pthread_mutex_lock(&c->job_mu);
    j->state = st;
    j->t_end = (double)time(NULL);
    j->progress = st == QXS_JOB_SUCCEEDED ? 1.0 : j->progress;
    snprintf(j->stage, sizeof j->stage, "%s", "done");
    if (err) snprintf(j->error, sizeof j->error, "%s", err);
    if (report) {
        j->report = qx_strdup(report);
        qx_free(c->last_report);
        c->last_report = qx_strdup(report);
    }
    c->active = NULL;
    pthread_mutex_unlock(&c->job_mu);
    pthread_mutex_lock(&c->wmu); /* drop renames the directory under wmu */
    if (report && !atomic_load(&c->dropped)) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/report.json", c->dir);
        if (qx_write_atomic(path, report, strlen(report)))
            qxs_log(QXS_LOG_WARN, "collection %s: could not save report.json: %s", c->name, qx_last_error());
    }
    pthread_mutex_unlock(&c->wmu);
    qxs_metrics *m = &a->s->m;
    if (st == QXS_JOB_SUCCEEDED) atomic_fetch_add(&m->rebuild_ok, 1);
    else if (st == QXS_JOB_REJECTED) atomic_fetch_add(&m->rebuild_rejected, 1);
    else atomic_fetch_add(&m->rebuild_failed, 1);
    static const char *const names[] = {"queued", "running", "succeeded", "rejected", "failed", "canceled"};
    qxs_log(st == QXS_JOB_SUCCEEDED ? QXS_LOG_INFO : QXS_LOG_WARN, "collection %s: rebuild job %llu %s%s%s", c->name,
            (unsigned long long)j->id, names[st], err ? ": " : "", err ? err : "");
}

/* The rows that existed when the job started: (segment number, row count). */
typedef struct rb_range {
    uint32_t no;
    size_t n;
} rb_range;

#define RB_CHUNK 4096

/* Copy up to RB_CHUNK live rows starting at row r of range g into x/keys
 * (under the read lock); advances *g / *r; returns the count. */
static size_t copy_chunk(qxs_coll *c, const rb_range *rg, size_t nr, size_t *g, size_t *r, float *x,
                         int64_t *keys) {
    size_t m = 0;
    pthread_rwlock_rdlock(&c->rw);
    while (m < RB_CHUNK && *g < nr) {
        if (*r >= rg[*g].n) {
            (*g)++;
            *r = 0;
            continue;
        }
        int64_t key = qxs_rowkey(rg[*g].no, (uint32_t)*r);
        (*r)++;
        if (!qxs_store_live(&c->store, key)) continue;
        memcpy(x + m * c->d, qxs_store_vec(&c->store, key), c->d * sizeof(float));
        keys[m++] = key;
    }
    pthread_rwlock_unlock(&c->rw);
    return m;
}

/* Push the distances of nq queries to m rows into their top-k heaps (self excluded). */
static int gt_chunk(const float *qs, size_t nq, const int64_t *qkeys, const float *x, const int64_t *keys, size_t m,
                    size_t d, int metric, float *scratch, qxs_topk *heaps) {
    if (metric == 0) {
        int rc = qx_l2sqr_matrix(scratch, qs, nq, x, m, d, NULL, NULL);
        if (rc) return rc;
    } else {
        for (size_t i = 0; i < nq; i++) {
            qx_dot_ny(scratch + i * m, qs + i * d, x, d, m);
            for (size_t j = 0; j < m; j++) scratch[i * m + j] = -scratch[i * m + j];
        }
    }
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < m; j++)
            if (keys[j] != qkeys[i]) qxs_topk_push(&heaps[i], scratch[i * m + j], keys[j]);
    return 0;
}

static void *rebuild_main(void *arg) {
    rb_arg *a = arg;
    qxs_server *s = a->s;
    qxs_coll *c = a->c;
    qxs_job *j = a->j;
    size_t d = c->d;
    int metric = qxs_metric_of(c->distance);
    int threads = s->cfg.rebuild_threads > 0 ? s->cfg.rebuild_threads : qx_num_threads();
    omp_set_num_threads(threads);
    float *train = NULL, *qs = NULL, *gs = NULL, *chunk = NULL, *scratch = NULL, *gdist = NULL;
    int64_t *qids = NULL, *gt = NULL, *ckeys = NULL, *gkeys = NULL;
    rb_range *rg = NULL;
    qxs_topk *heaps = NULL;
    qx_ivf *ivf = NULL;
    qxs_rowmap *rowmap = NULL; /* ivf's id map (freed after ivf) */
    qx_derp_report *rep = NULL;
    char *report = NULL;
    char err[256] = "";
    qxs_job_state st = QXS_JOB_FAILED;
    int rc = 0;
    double t0 = qx_now();

    pthread_mutex_lock(&c->job_mu);
    j->state = QXS_JOB_RUNNING;
    j->t_start = (double)time(NULL);
    snprintf(j->stage, sizeof j->stage, "sample");
    pthread_mutex_unlock(&c->job_mu);

    /* 1. note the rows that exist and start tracking writes */
    pthread_mutex_lock(&c->wmu);
    size_t nr = c->store.nsegs + 1, n = c->store.n_live, total_rows = 0;
    rg = qx_malloc(nr * sizeof *rg);
    if (rg) {
        for (size_t i = 0; i < c->store.nsegs; i++) rg[i] = (rb_range){c->store.segs[i]->no, c->store.segs[i]->n};
        rg[nr - 1] = (rb_range){c->store.mut.no, c->store.mut.n};
        for (size_t i = 0; i < nr; i++) total_rows += rg[i].n;
        c->tracking = 1;
        c->ntouched = 0;
    }
    int red = atomic_load(&c->failed);
    pthread_mutex_unlock(&c->wmu);
    if (red) {
        snprintf(err, sizeof err, "collection is read-only (red): %.200s", c->red_reason);
        goto done;
    }
    if (!rg) {
        snprintf(err, sizeof err, "out of memory");
        goto done;
    }
    if (n < QXS_REBUILD_MIN_POINTS) {
        snprintf(err, sizeof err, "%zu points; a rebuild needs at least %d", n, QXS_REBUILD_MIN_POINTS);
        goto done;
    }

    /* 2. samples, in one pass over the rows (seeded by the job id):
     *    - gate queries: nq rows at random (held out of training);
     *    - training sample: evenly strided over the other live rows;
     *    - DERP sample: up to QXS_GATE_SAMPLE rows picked by a hash of the key. */
    uint64_t seed = 0x5EEDull + j->id;
    size_t nq = n / 20 < QXS_GATE_QUERIES ? n / 20 : QXS_GATE_QUERIES;
    size_t cap_train = a->p.train_size ? a->p.train_size : QXS_DEFAULT_TRAIN;
    size_t avail = n - nq, ntrain = avail < cap_train ? avail : cap_train;
    size_t gcap = n < QXS_GATE_SAMPLE ? n : QXS_GATE_SAMPLE, gn = 0, w = 0, seen = 0;
    qs = qx_aligned_alloc(nq * d * sizeof(float));
    qids = qx_malloc(nq * sizeof *qids);
    gt = qx_malloc(nq * QXS_GATE_K * sizeof *gt);
    train = qx_aligned_alloc(ntrain * d * sizeof(float));
    gs = qx_aligned_alloc(gcap * d * sizeof(float));
    gkeys = qx_malloc(gcap * sizeof *gkeys);
    chunk = qx_aligned_alloc(RB_CHUNK * d * sizeof(float));
    ckeys = qx_malloc(RB_CHUNK * sizeof *ckeys);
    scratch = qx_aligned_alloc((nq ? nq : 1) * RB_CHUNK * sizeof(float));
    heaps = qx_calloc(nq + 1, sizeof *heaps);
    gdist = qx_malloc((nq + 1) * (QXS_GATE_K + 1) * sizeof *gdist);
    int64_t *hids = qx_malloc((nq + 1) * (QXS_GATE_K + 1) * sizeof *hids);
    uint64_t *qrow = qx_malloc((nq + 1) * sizeof *qrow);
    if (!qs || !qids || !gt || !train || !gs || !gkeys || !chunk || !ckeys || !scratch || !heaps || !gdist || !hids ||
        !qrow) {
        qx_free(hids);
        qx_free(qrow);
        snprintf(err, sizeof err, "out of memory (samples: %zu training vectors)", ntrain);
        goto done;
    }
    /* query rows: distinct random live row numbers, sorted for the pass */
    size_t got_q = 0;
    for (size_t tries = 0; got_q < nq && tries < 100 * nq + 1000; tries++) {
        uint64_t r = qx_rng_next(&seed) % total_rows;
        int dup = 0;
        for (size_t i = 0; i < got_q && !dup; i++) dup = qrow[i] == r;
        if (!dup) qrow[got_q++] = r;
    }
    for (size_t i = 1; i < got_q; i++) /* insertion sort: nq <= 200 */
        for (size_t k = i; k > 0 && qrow[k - 1] > qrow[k]; k--) {
            uint64_t t = qrow[k];
            qrow[k] = qrow[k - 1];
            qrow[k - 1] = t;
        }
    {
        size_t g = 0, r = 0, row = 0, qi = 0, nqk = 0;
        while (g < nr) {
            pthread_rwlock_rdlock(&c->rw);
            for (size_t m = 0; m < RB_CHUNK && g < nr;) {
                if (r >= rg[g].n) {
                    g++;
                    r = 0;
                    continue;
                }
                int64_t key = qxs_rowkey(rg[g].no, (uint32_t)r);
                size_t this_row = row++;
                r++;
                m++;
                int is_q = qi < got_q && qrow[qi] == this_row;
                if (is_q) qi++;
                if (!qxs_store_live(&c->store, key)) continue;
                const float *v = qxs_store_vec(&c->store, key);
                if (is_q && nqk < nq) {
                    memcpy(qs + nqk * d, v, d * sizeof(float));
                    qids[nqk++] = key;
                    continue;
                }
                if (w < ntrain && seen == qx_sample_index(w, avail, ntrain)) memcpy(train + (w++) * d, v, d * sizeof(float));
                seen++;
                uint64_t hk = (uint64_t)key ^ seed;
                if (gn < gcap && qx_rng_next(&hk) % n < gcap) {
                    memcpy(gs + gn * d, v, d * sizeof(float));
                    gkeys[gn++] = key;
                }
            }
            pthread_rwlock_unlock(&c->rw);
        }
        nq = nqk;
    }
    ntrain = w;
    qx_free(qrow);
    for (size_t i = 0; i < nq; i++)
        heaps[i] = (qxs_topk){.k = QXS_GATE_K, .n = 0, .dist = gdist + i * (QXS_GATE_K + 1), .ids = hids + i * (QXS_GATE_K + 1)};

    /* 3. train */
    qx_quantizer *q = NULL;
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.metric = metric ? QX_METRIC_IP : QX_METRIC_L2;
    io.nlist = a->p.nlist ? a->p.nlist : (size_t)(4.0 * sqrt((double)n));
    if (io.nlist < 1) io.nlist = 1;
    if (c->quant_kind == QX_QUANT_QINCO) {
        /* QINCo-style: the network trains inside qx_ivf_train (on the
         * residuals), bounded by epochs and a wall-clock budget */
        qx_qinco_opts qo;
        qx_qinco_opts_init(&qo);
        qo.M = a->p.bytes - (io.metric == QX_METRIC_L2); /* the norm byte counts */
        qo.epochs = a->p.epochs;
        qo.train_minutes = a->p.train_minutes;
        qo.threads = threads;
        rc = qx_qinco_new(&q, d, &qo);
    } else if (c->quant_kind == QX_QUANT_FASTSCAN) {
        /* 4-bit steps (scanned in registers) and 8-bit steps, split and
         * shaped as qinx build --quantizer fastscan --fs-steps --fs-shape */
        qx_fs_opts fo;
        qx_fs_opts_init(&fo);
        fo.product4 = a->p.fs_product;
        fo.threads = threads;
        rc = qxs_fs_split(d, c->distance, a->p.bytes, a->p.fs_product, a->p.fs_steps, &fo.M4, &fo.M8);
        if (!rc) rc = qx_fs_new(&q, d, &fo);
    } else {
        qx_rq_opts ro;
        qx_rq_opts_init(&ro);
        ro.M = a->p.bytes - (io.metric == QX_METRIC_L2); /* the norm byte counts */
        ro.threads = threads;
        rc = qx_rq_new(&q, d, &ro);
    }
    if (rc || (rc = qx_ivf_new(&ivf, d, q, &io))) {
        qx_free(hids);
        snprintf(err, sizeof err, "creating the index: %s", qx_last_error());
        goto done;
    }
    prog_ctx pc = {c, j, 0.0, 0.6};
    qx_ivf_set_progress(ivf, on_progress, &pc);
    set_stage(c, j, "train", 0.0);
    if ((rc = qx_ivf_train(ivf, train, ntrain))) {
        qx_free(hids);
        snprintf(err, sizeof err, "training: %s", qx_last_error());
        goto done;
    }
    qx_ivf_set_progress(ivf, NULL, NULL);
    qx_aligned_free(train); /* not needed any more: the reservoir keeps its own sample */
    train = NULL;
    /* the candidate's id map: 8 bytes a row, sized per segment up front */
    rc = qxs_rowmap_attach(ivf, &rowmap);
    for (size_t i = 0; !rc && i < nr; i++) rc = qxs_rowmap_reserve(rowmap, rg[i].no, rg[i].n);
    if (rc) {
        qx_free(hids);
        snprintf(err, sizeof err, "row map: %s", qx_last_error());
        goto done;
    }

    /* 4. the sealed segments' vector and payload checksums (the pass below
     *    reads every vector anyway; a corrupt one stops the collection),
     *    then encode segment by segment, chunk by chunk, with the exact
     *    neighbours of the gate queries in the same pass. Segments stay
     *    open while the job runs (merges wait for it), so they are read
     *    without the lock. */
    set_stage(c, j, "verify", 0.6);
    {
        qxs_seg **segs = qx_malloc((nr + 1) * sizeof *segs);
        size_t ns = 0;
        pthread_rwlock_rdlock(&c->rw);
        for (size_t i = 0; segs && i < c->store.nsegs; i++)
            for (size_t g = 0; g < nr; g++)
                if (c->store.segs[i]->no == rg[g].no && ns < nr) segs[ns++] = c->store.segs[i];
        pthread_rwlock_unlock(&c->rw);
        for (size_t i = 0; segs && !rc && i < ns; i++) rc = qxs_seg_verify(segs[i]);
        qx_free(segs);
        if (rc) {
            qx_free(hids);
            snprintf(err, sizeof err, "%s", qx_last_error());
            qxs_coll_set_red(c, err);
            goto done;
        }
    }
    set_stage(c, j, "encode", 0.6);
    {
        size_t g = 0, r = 0, done_rows = 0, m;
        while (!rc && (m = copy_chunk(c, rg, nr, &g, &r, chunk, ckeys)) > 0) {
            rc = qx_ivf_add(ivf, chunk, ckeys, m);
            if (!rc && nq) rc = gt_chunk(qs, nq, qids, chunk, ckeys, m, d, metric, scratch, heaps);
            done_rows += m;
            set_stage(c, j, "encode", 0.6 + 0.3 * (double)done_rows / (double)(n ? n : 1));
            if (atomic_load(&s->stopping) || atomic_load(&c->dropped)) break;
        }
    }
    for (size_t i = 0; i < nq; i++) {
        qxs_topk_finish(&heaps[i]);
        memcpy(gt + i * QXS_GATE_K, heaps[i].ids, QXS_GATE_K * sizeof *gt);
    }
    qx_free(hids);
    if (!rc) rc = qx_ivf_trim(ivf); /* lists to their size: the candidate is not visible yet */
    if (rc) {
        snprintf(err, sizeof err, "encoding: %s", qx_last_error());
        goto done;
    }
    if (atomic_load(&s->stopping) || atomic_load(&c->dropped)) {
        st = QXS_JOB_CANCELED;
        snprintf(err, sizeof err, "%s", atomic_load(&c->dropped) ? "collection deleted" : "server shutting down");
        goto done;
    }

    /* 5. gate */
    set_stage(c, j, "gate", 0.9);
    double cand = 0, live = -1;
    if ((rc = index_recall(ivf, qs, qids, nq, d, gt, &cand))) {
        snprintf(err, sizeof err, "gate search: %s", qx_last_error());
        goto done;
    }
    pthread_rwlock_rdlock(&c->rw);
    if (c->ivf && index_recall(c->ivf, qs, qids, nq, d, gt, &live)) live = -1;
    pthread_rwlock_unlock(&c->rw);
    /* The library's DERP gate (codebook usage/perplexity, MSE ratio, drift
     * against the training reservoir) on the candidate alone, over the DERP
     * sample (the gate samples 10,000 vectors itself; its recall check would
     * need every vector in memory, so the held-out recall above, exact over
     * every row, takes its place). Evaluating the live index inside it would
     * hold the read lock for seconds; the live comparison is done above. */
    qx_gate_config gc;
    qx_gate_config_init(&gc);
    gc.min_recall = a->p.min_recall;
    gc.queries = 0;
    if (!isnan(a->p.min_used_fraction)) gc.derp_checks.min_used_fraction = a->p.min_used_fraction;
    if (!isnan(a->p.min_perplexity)) gc.derp_checks.min_perplexity = a->p.min_perplexity;
    if (!isnan(a->p.max_drift_rejected_fraction))
        gc.derp_checks.max_drift_rejected_fraction = a->p.max_drift_rejected_fraction;
    if (!isnan(a->p.max_mse_ratio)) gc.max_mse_ratio = a->p.max_mse_ratio;
    if (!isnan(a->p.max_recall_drop)) gc.max_recall_drop = a->p.max_recall_drop;
    int gate_pass = 0;
    if ((rc = qx_gate_evaluate(ivf, NULL, gs, gkeys, gn, &gc, &rep, &gate_pass))) {
        snprintf(err, sizeof err, "DERP gate: %s", qx_last_error());
        goto done;
    }
    char buf[64];
    qx_derp_report_set_meta(rep, "collection", c->name);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)j->id);
    qx_derp_report_set_meta(rep, "job", buf);
    snprintf(buf, sizeof buf, "%zu", n);
    qx_derp_report_set_meta(rep, "points", buf);
    snprintf(buf, sizeof buf, "%zu", ntrain);
    qx_derp_report_set_meta(rep, "train_size", buf);
    snprintf(buf, sizeof buf, "%zu", nq);
    qx_derp_report_set_meta(rep, "gate_queries", buf);
    snprintf(buf, sizeof buf, "%zu", gn);
    qx_derp_report_set_meta(rep, "derp_sample", buf);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    snprintf(buf, sizeof buf, "%zu", info.nlist);
    qx_derp_report_set_meta(rep, "nlist", buf);
    snprintf(buf, sizeof buf, "%zu", info.code_size);
    qx_derp_report_set_meta(rep, "code_size", buf);
    qx_derp_report_add_check(rep, "server.heldout_recall", cand, a->p.min_recall, QX_DERP_GE, NULL);
    if (live >= 0) {
        snprintf(buf, sizeof buf, "%.4f", live);
        qx_derp_report_set_meta(rep, "live_heldout_recall", buf);
        qx_derp_report_add_check(rep, "server.heldout_recall_drop", live - cand, QXS_GATE_LIVE_SLACK, QX_DERP_LE,
                                 NULL);
    }
    int pass = qx_derp_report_passed(rep);
    snprintf(buf, sizeof buf, "%.3f", qx_now() - t0);
    qx_derp_report_set_meta(rep, "seconds_to_gate", buf);
    qx_derp_report_set_meta(rep, "decision", pass ? "published" : "rejected: live index kept");
    if (qx_derp_report_json(rep, &report, NULL)) report = NULL;
    if (!pass) {
        st = QXS_JOB_REJECTED;
        /* name the failed checks: "min_used_fraction 0.449 (>= 0.5)" */
        char failed[200] = "";
        json_t *rj = report ? json_loads(report, 0, NULL) : NULL;
        json_t *checks = rj ? json_object_get(rj, "checks") : NULL;
        size_t i;
        json_t *ck;
        json_array_foreach(checks, i, ck) {
            if (json_is_true(json_object_get(ck, "pass"))) continue;
            size_t l = strlen(failed);
            snprintf(failed + l, sizeof failed - l, "%s%s %.4g (%s %.4g)", l ? ", " : "",
                     json_string_value(json_object_get(ck, "name")) ? json_string_value(json_object_get(ck, "name")) : "?",
                     json_number_value(json_object_get(ck, "value")),
                     json_string_value(json_object_get(ck, "cmp")) ? json_string_value(json_object_get(ck, "cmp")) : "?",
                     json_number_value(json_object_get(ck, "threshold")));
        }
        json_decref(rj);
        snprintf(err, sizeof err, "gate failed: %s; live index kept", failed[0] ? failed : "see report");
        goto done;
    }

    /* 6. catch up with writes made while training, swap, checkpoint */
    set_stage(c, j, "swap", 0.95);
    pthread_mutex_lock(&c->wmu);
    if (c->tracking < 0 || atomic_load(&c->dropped) || atomic_load(&s->stopping) || atomic_load(&c->failed)) {
        int was_red = atomic_load(&c->failed);
        pthread_mutex_unlock(&c->wmu);
        st = was_red ? QXS_JOB_FAILED : QXS_JOB_CANCELED;
        snprintf(err, sizeof err, "%s", was_red ? "collection became read-only (red); live index kept"
                                        : c->tracking < 0 ? "lost track of concurrent writes (out of memory)"
                                                          : "collection deleted or server stopping");
        goto done;
    }
    /* under wmu no writer changes the store, so rows can be read without rw */
    for (size_t i = 0; i + 1 < c->ntouched && !rc; i += 2) {
        int64_t old = c->touched[i], nk = c->touched[i + 1];
        if (old >= 0) rc = qx_ivf_remove(ivf, &old, 1, NULL);
        if (!rc && nk >= 0 && qxs_store_live(&c->store, nk)) rc = qx_ivf_add(ivf, qxs_store_vec(&c->store, nk), &nk, 1);
    }
    if (rc) {
        c->tracking = 0;
        pthread_mutex_unlock(&c->wmu);
        snprintf(err, sizeof err, "catch-up: %s", qx_last_error());
        goto done;
    }
    size_t caught = c->ntouched / 2;
    qx_ivf_get_info(ivf, &info);
    pthread_rwlock_wrlock(&c->rw);
    qx_ivf *old = c->ivf;
    qxs_rowmap *old_map = c->rowmap;
    size_t old_bytes = c->ivf_bytes;
    c->ivf = ivf;
    c->rowmap = rowmap;
    c->ivf_gen = atomic_fetch_add(&s->ivf_gen, 1) + 1;
    c->ivf_bytes = info.bytes;
    pthread_rwlock_unlock(&c->rw);
    c->tracking = 0;
    c->ntouched = 0;
    int dirty_before = c->ivf_dirty;
    c->ivf_dirty = 1;
    if (qxs_coll_checkpoint(c)) {
        /* not durable: put the live index back (it was kept current by every
         * write until the swap, and no write ran since: we hold wmu) */
        snprintf(err, sizeof err, "the new index could not be saved (checkpoint failed: %s); live index kept",
                 qx_last_error());
        pthread_rwlock_wrlock(&c->rw);
        c->ivf = old;
        c->rowmap = old_map;
        c->ivf_gen = atomic_fetch_add(&s->ivf_gen, 1) + 1;
        pthread_rwlock_unlock(&c->rw);
        c->ivf_dirty = dirty_before;
        c->ivf_bytes = old_bytes;
        pthread_mutex_unlock(&c->wmu);
        goto done; /* frees the candidate (ivf): no search can hold it after the write lock above */
    }
    qxs_drift_index_changed(c); /* the new index's reservoir is the reference from now on */
    pthread_mutex_unlock(&c->wmu);
    ivf = old; /* freed below, after no search can hold it */
    rowmap = old_map;
    qxs_log(QXS_LOG_INFO, "collection %s: rebuild %llu published (recall %.4f, %zu writes caught up, %.2f s)",
            c->name, (unsigned long long)j->id, cand, caught, qx_now() - t0);
    st = QXS_JOB_SUCCEEDED;

done:
    if (st != QXS_JOB_SUCCEEDED) {
        pthread_mutex_lock(&c->wmu);
        c->tracking = 0;
        c->ntouched = 0;
        pthread_mutex_unlock(&c->wmu);
    }
    finish(a, st, report, err[0] ? err : NULL);
    qx_free(report);
    qx_derp_report_free(rep);
    qx_ivf_free(ivf);
    qxs_rowmap_free(rowmap);
    qx_aligned_free(train);
    qx_aligned_free(qs);
    qx_aligned_free(gs);
    qx_aligned_free(chunk);
    qx_aligned_free(scratch);
    qx_free(gkeys);
    qx_free(ckeys);
    qx_free(heaps);
    qx_free(gdist);
    qx_free(rg);
    qx_free(qids);
    qx_free(gt);
    atomic_fetch_sub(&s->rebuilds_running, 1);
    qxs_coll_put(c);
    qx_free(a);
    return NULL;
}

int qxs_fs_split(size_t d, qxs_distance dist, size_t bytes, int product, size_t fs_steps, size_t *m4,
                 size_t *m8) {
    size_t M = bytes - (qxs_metric_of(dist) == 0); /* the norm byte counts */
    size_t steps = fs_steps ? fs_steps : bytes / 2 * 2;
    char what[64];
    snprintf(what, sizeof what, "fs_steps = %zu%s", steps, fs_steps ? "" : " (the default: half the bytes)");
    if (steps < 2 || steps > QX_FS_MAX_STEPS4 || steps % 2)
        return qx_error_set(QX_EINVAL, "%s: 4-bit steps must be even and 2..%d", what, QX_FS_MAX_STEPS4);
    if (steps / 2 > M)
        return qx_error_set(QX_EINVAL,
                            "%s: %zu 4-bit steps take %zu bytes, more than the %zu code bytes of bytes = %zu%s", what,
                            steps, steps / 2, M, bytes, M < bytes ? " (one is the norm byte)" : "");
    if (product && steps > d)
        return qx_error_set(QX_EINVAL, "%s: the product shape needs at most d = %zu 4-bit steps (a subspace each)",
                            what, d);
    *m4 = steps;
    *m8 = M - steps / 2;
    return 0;
}

int qxs_rebuild_start(qxs_server *s, qxs_coll *c, const qxs_rebuild_params *p, uint64_t *job_id) {
    pthread_rwlock_rdlock(&c->rw);
    size_t n = c->store.n_live;
    pthread_rwlock_unlock(&c->rw);
    if (atomic_load(&c->failed))
        return qx_error_set(QX_ESTATE, "collection '%s' is read-only (red): %s; a rebuild could not be saved", c->name,
                        c->red_reason);
    if (n < QXS_REBUILD_MIN_POINTS)
        return qx_error_set(QX_ELIMIT, "collection '%s' has %zu points; a rebuild needs at least %d", c->name, n,
                        QXS_REBUILD_MIN_POINTS);
    if (atomic_load(&s->stopping)) return qx_error_set(QX_ESTATE, "server is shutting down");
    pthread_mutex_lock(&c->job_mu);
    if (c->active) {
        *job_id = c->active->id;
        pthread_mutex_unlock(&c->job_mu);
        return QX_EEXIST;
    }
    qxs_job *j = qx_calloc(1, sizeof *j);
    rb_arg *a = qx_calloc(1, sizeof *a);
    if (!j || !a) {
        pthread_mutex_unlock(&c->job_mu);
        qx_free(j);
        qx_free(a);
        return qx_error_set(QX_ENOMEM, "rebuild job");
    }
    j->id = atomic_fetch_add(&s->next_job, 1) + 1;
    j->state = QXS_JOB_QUEUED;
    j->t_created = (double)time(NULL);
    snprintf(j->stage, sizeof j->stage, "queued");
    j->bytes = p->bytes;
    j->nlist = p->nlist;
    j->train_size = p->train_size;
    j->min_recall = p->min_recall;
    /* keep the list short: drop the oldest finished jobs */
    j->next = c->jobs;
    c->jobs = j;
    size_t kept = 0;
    for (qxs_job **pp = &c->jobs; *pp;) {
        if (++kept > QXS_MAX_JOBS_KEPT && (*pp)->state >= QXS_JOB_SUCCEEDED) {
            qxs_job *dead = *pp;
            *pp = dead->next;
            qx_free(dead->report);
            qx_free(dead);
        } else {
            pp = &(*pp)->next;
        }
    }
    c->active = j;
    pthread_mutex_unlock(&c->job_mu);
    *a = (rb_arg){s, c, j, *p};
    atomic_fetch_add(&c->refs, 1);
    atomic_fetch_add(&s->rebuilds_running, 1);
    atomic_fetch_add(&s->m.rebuild_started, 1);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, rebuild_main, a);
    pthread_attr_destroy(&attr);
    if (e) {
        atomic_fetch_sub(&s->rebuilds_running, 1);
        pthread_mutex_lock(&c->job_mu);
        j->state = QXS_JOB_FAILED;
        snprintf(j->error, sizeof j->error, "could not start a thread");
        c->active = NULL;
        pthread_mutex_unlock(&c->job_mu);
        qxs_coll_put(c);
        qx_free(a);
        return qx_error_set(QX_ENOMEM, "pthread_create failed");
    }
    *job_id = j->id;
    return 0;
}
