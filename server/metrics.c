/* server/metrics.c — Prometheus text exposition of the server's counters.
 * Request counters and latency histograms are lock-free atomics indexed by a
 * fixed endpoint label table; gauges (points, index bytes, jobs) are read from
 * the collections at scrape time. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/monitor.h"
#include "srv.h"

/* A gauge value as Prometheus writes it (NaN before a monitor's first check). */
static const char *gauge(double v, char buf[32]) {
    if (isnan(v)) return "NaN";
    snprintf(buf, 32, "%.6g", v);
    return buf;
}

static const char *const labels[QXS_NLABELS] = {
    "healthz", "readyz", "metrics", "list_collections", "create_collection", "delete_collection",
    "get_collection", "upsert", "retrieve", "get_point", "delete_points", "search", "search_batch",
    "rebuild", "list_rebuilds", "get_rebuild", "query", "scroll", "count", "payload", "payload_index", "snapshot",
    "unknown", "other"};
static const int codes[QXS_NCODES] = {200, 400, 401, 404, 405, 409, 413, 422, 500, 503, 0, -1};
static const double buckets[QXS_NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                             0.025,  0.05,    0.1,    0.25,  0.5,    1,     5};

static int label_index(const char *l) {
    for (int i = 0; i < QXS_NLABELS - 1; i++)
        if (!strcmp(labels[i], l)) return i;
    return QXS_NLABELS - 1;
}

void qxs_metrics_observe(qxs_metrics *m, const char *label, int status, double sec) {
    int li = label_index(label), ci = QXS_NCODES - 1;
    for (int i = 0; i < QXS_NCODES - 2; i++)
        if (codes[i] == status) ci = i;
    atomic_fetch_add(&m->req[li][ci], 1);
    int b = 0;
    while (b < QXS_NBUCKETS && sec > buckets[b]) b++;
    atomic_fetch_add(&m->hist[li][b], 1);
    atomic_fetch_add(&m->sum_us[li], (uint64_t)(sec * 1e6));
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = qx_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

char *qxs_metrics_render(qxs_server *s, size_t *len) {
    sbuf b = {.p = qx_malloc(16384), .cap = 16384};
    if (!b.p) return NULL;
    b.p[0] = 0;
    qxs_metrics *m = &s->m;
    sb_printf(&b, "# HELP qinx_http_requests_total HTTP requests by endpoint and status code.\n"
                  "# TYPE qinx_http_requests_total counter\n");
    for (int l = 0; l < QXS_NLABELS; l++)
        for (int c = 0; c < QXS_NCODES; c++) {
            uint64_t v = atomic_load(&m->req[l][c]);
            if (!v) continue;
            if (codes[c] > 0)
                sb_printf(&b, "qinx_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", labels[l], codes[c],
                          (unsigned long long)v);
            else
                sb_printf(&b, "qinx_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n", labels[l],
                          (unsigned long long)v);
        }
    sb_printf(&b, "# HELP qinx_http_request_duration_seconds Request latency by endpoint.\n"
                  "# TYPE qinx_http_request_duration_seconds histogram\n");
    for (int l = 0; l < QXS_NLABELS; l++) {
        uint64_t cum = 0, tot = 0;
        for (int i = 0; i <= QXS_NBUCKETS; i++) tot += atomic_load(&m->hist[l][i]);
        if (!tot) continue;
        for (int i = 0; i < QXS_NBUCKETS; i++) {
            cum += atomic_load(&m->hist[l][i]);
            sb_printf(&b, "qinx_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", labels[l],
                      buckets[i], (unsigned long long)cum);
        }
        cum += atomic_load(&m->hist[l][QXS_NBUCKETS]);
        sb_printf(&b, "qinx_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", labels[l],
                  (unsigned long long)cum);
        sb_printf(&b, "qinx_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", labels[l],
                  atomic_load(&m->sum_us[l]) / 1e6);
        sb_printf(&b, "qinx_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", labels[l],
                  (unsigned long long)cum);
    }
    sb_printf(&b,
              "# HELP qinx_rebuilds_total Rebuild jobs by outcome (started, published, rejected by the gate, failed).\n"
              "# TYPE qinx_rebuilds_total counter\n"
              "qinx_rebuilds_total{outcome=\"started\"} %llu\n"
              "qinx_rebuilds_total{outcome=\"published\"} %llu\n"
              "qinx_rebuilds_total{outcome=\"gate_rejected\"} %llu\n"
              "qinx_rebuilds_total{outcome=\"failed\"} %llu\n"
              "# HELP qinx_gate_outcomes_total Rebuild gate decisions.\n"
              "# TYPE qinx_gate_outcomes_total counter\n"
              "qinx_gate_outcomes_total{outcome=\"pass\"} %llu\n"
              "qinx_gate_outcomes_total{outcome=\"fail\"} %llu\n"
              "# HELP qinx_wal_syncs_total Write requests that waited for a log fsync (group commit).\n"
              "# TYPE qinx_wal_syncs_total counter\n"
              "qinx_wal_syncs_total %llu\n"
              "# TYPE qinx_points_upserted_total counter\nqinx_points_upserted_total %llu\n"
              "# TYPE qinx_points_deleted_total counter\nqinx_points_deleted_total %llu\n"
              "# TYPE qinx_searches_total counter\nqinx_searches_total %llu\n"
              "# TYPE qinx_uptime_seconds gauge\nqinx_uptime_seconds %.3f\n"
              "# TYPE qinx_ready gauge\nqinx_ready %d\n",
              (unsigned long long)atomic_load(&m->rebuild_started), (unsigned long long)atomic_load(&m->rebuild_ok),
              (unsigned long long)atomic_load(&m->rebuild_rejected),
              (unsigned long long)atomic_load(&m->rebuild_failed), (unsigned long long)atomic_load(&m->rebuild_ok),
              (unsigned long long)atomic_load(&m->rebuild_rejected), (unsigned long long)atomic_load(&m->wal_fsyncs),
              (unsigned long long)atomic_load(&m->points_upserted),
              (unsigned long long)atomic_load(&m->points_deleted), (unsigned long long)atomic_load(&m->searches),
              qx_now() - s->t_start, atomic_load(&s->ready));
    sb_printf(&b,
              "# HELP qinx_http_connections_evicted_total Connections waiting for a request head that were closed "
              "to admit a new one at a connection limit.\n"
              "# TYPE qinx_http_connections_evicted_total counter\nqinx_http_connections_evicted_total %llu\n"
              "# HELP qinx_http_connections_refused_total Connections refused (503) at a limit with every "
              "connection busy.\n"
              "# TYPE qinx_http_connections_refused_total counter\nqinx_http_connections_refused_total %llu\n"
              "# HELP qinx_http_timeouts_total Connections closed by the header or idle timeout.\n"
              "# TYPE qinx_http_timeouts_total counter\nqinx_http_timeouts_total %llu\n",
              (unsigned long long)atomic_load(&m->conn_evicted), (unsigned long long)atomic_load(&m->conn_refused),
              (unsigned long long)atomic_load(&m->conn_timeouts));
    sb_printf(&b, "# HELP qinx_collection_points Points stored per collection.\n"
                  "# TYPE qinx_collection_points gauge\n");
    pthread_rwlock_rdlock(&s->reg_rw);
    size_t total_bytes = 0, total_ram = 0;
    for (size_t i = 0; i < s->ncolls; i++) {
        qxs_coll *c = s->colls[i];
        qxs_coll_mem mem;
        qxs_coll_memory(c, &mem);
        pthread_rwlock_rdlock(&c->rw);
        size_t ib = c->ivf_bytes;
        int idx = c->ivf != NULL;
        pthread_rwlock_unlock(&c->rw);
        total_bytes += ib;
        total_ram += mem.total_ram;
        sb_printf(&b, "qinx_collection_points{collection=\"%s\"} %zu\n", c->name, mem.points);
        sb_printf(&b, "qinx_collection_index_bytes{collection=\"%s\"} %zu\n", c->name, ib);
        sb_printf(&b, "qinx_collection_indexed{collection=\"%s\"} %d\n", c->name, idx);
        sb_printf(&b, "qinx_collection_red{collection=\"%s\"} %d\n", c->name, atomic_load(&c->failed) ? 1 : 0);
        sb_printf(&b, "qinx_collection_wal_bytes{collection=\"%s\"} %zu\n", c->name, mem.wal);
        qx_monitor_status ms;
        char g[32];
        if (qxs_drift_status(c, &ms)) { /* live drift monitor: 0 ok, 1 drifting, 2 drifted */
            sb_printf(&b, "qinx_collection_drift_state{collection=\"%s\"} %d\n", c->name, (int)ms.state);
            sb_printf(&b, "qinx_collection_drift_checks{collection=\"%s\"} %llu\n", c->name,
                      (unsigned long long)ms.checks);
            sb_printf(&b, "qinx_collection_drift_rejected_fraction{collection=\"%s\"} %s\n", c->name,
                      gauge(ms.rejected_fraction, g));
            sb_printf(&b, "qinx_collection_drift_effect{collection=\"%s\"} %s\n", c->name, gauge(ms.effect, g));
            sb_printf(&b, "qinx_collection_recent_code_used_fraction{collection=\"%s\"} %s\n", c->name,
                      gauge(ms.code_used_fraction, g));
            sb_printf(&b, "qinx_collection_recent_code_perplexity{collection=\"%s\"} %s\n", c->name,
                      gauge(ms.code_perplexity, g));
        }
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"codes\"} %zu\n", c->name, mem.codes);
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"ids\"} %zu\n", c->name, mem.ids);
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"index_other\"} %zu\n", c->name,
                  mem.index_other);
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"tombstones\"} %zu\n", c->name,
                  mem.tombstones);
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"mutable_segment\"} %zu\n", c->name,
                  mem.mutable_bytes);
        sb_printf(&b, "qinx_collection_ram_bytes{collection=\"%s\",kind=\"raw_vectors\"} %zu\n", c->name,
                  mem.raw_ram);
        sb_printf(&b, "qinx_collection_disk_bytes{collection=\"%s\",kind=\"segments\"} %zu\n", c->name,
                  mem.disk_segments);
        sb_printf(&b, "qinx_collection_checkpoint_bytes{collection=\"%s\"} %llu\n", c->name,
                  (unsigned long long)c->last_ckpt_bytes);
    }
    sb_printf(&b, "# TYPE qinx_ram_bytes gauge\nqinx_ram_bytes %zu\n", total_ram);
    if (s->cfg.memory_limit) sb_printf(&b, "# TYPE qinx_memory_limit_bytes gauge\nqinx_memory_limit_bytes %zu\n", s->cfg.memory_limit);
    sb_printf(&b, "# TYPE qinx_collections gauge\nqinx_collections %zu\n", s->ncolls);
    sb_printf(&b, "# TYPE qinx_index_bytes gauge\nqinx_index_bytes %zu\n", total_bytes);
    pthread_rwlock_unlock(&s->reg_rw);
    if (b.oom) {
        qx_free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
