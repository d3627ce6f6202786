/* server/autoindex.c — rebuilds that start by themselves (issue 18,
 * Qdrant's optimizers_config.indexing_threshold): when a collection holds
 * more points outside its IVF index than its indexing_threshold, or its
 * live drift monitor (drift.c) reports a new `drifted` event, the merger
 * thread starts the same job POST /collections/{name}/rebuild starts with
 * its defaults. The DERP gate decides the swap, and searches never wait
 * for it (rebuild.c).
 *
 * Decisions:
 * 1. "Unindexed" = live points − the index's entries. Once an index exists
 *    every write is encoded into it at once, so this counts the points of a
 *    collection that has no index yet (and rows an index add failed on).
 * 2. No loop on a rejected candidate: after an automatic start at u
 *    unindexed points the next one needs u + indexing_threshold (reset when
 *    a published index brings the count down), and a drift start needs a
 *    drifted event newer than the one that started the last.
 * 3. Runs on the merger thread (once a second), so its two fields in the
 *    collection need no lock; the counts are read under the read lock.
 */
#include <math.h>
#include <stdio.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "qinx/monitor.h"
#include "srv.h"

static void auto_params(const qxs_coll *c, qxs_rebuild_params *p) {
    /* what POST …/rebuild uses when its body is empty (api.c) */
    *p = (qxs_rebuild_params){.bytes = c->bytes, .nlist = c->nlist, .train_size = 0,
                              .fs_product = c->fs_product, .fs_steps = c->fs_steps, .min_recall = c->min_recall,
                              .epochs = 10, .train_minutes = 5, .min_used_fraction = NAN, .min_perplexity = NAN,
                              .max_drift_rejected_fraction = NAN, .max_mse_ratio = NAN, .max_recall_drop = NAN};
}

int qxs_autoindex_check(qxs_server *s, qxs_coll *c, uint64_t *job_id) {
    if (atomic_load(&c->failed) || atomic_load(&c->dropped) || atomic_load(&s->stopping)) return 0;
    pthread_mutex_lock(&c->job_mu);
    int busy = c->active != NULL;
    pthread_mutex_unlock(&c->job_mu);
    if (busy) return 0;
    pthread_rwlock_rdlock(&c->rw);
    qx_ivf_info info;
    size_t live = c->store.n_live, indexed = c->ivf && !qx_ivf_get_info(c->ivf, &info) ? info.ntotal : 0;
    int has_index = c->ivf != NULL;
    pthread_rwlock_unlock(&c->rw);
    size_t unindexed = live > indexed ? live - indexed : 0, thr = c->indexing_threshold;
    char why[160] = "";
    if (thr && c->auto_next > thr && unindexed + thr < c->auto_next) c->auto_next = 0; /* an index came */
    size_t need = c->auto_next ? c->auto_next : thr;
    if (thr && unindexed > need) {
        snprintf(why, sizeof why, "%zu unindexed points > %zu (indexing_threshold %zu)", unindexed, need, thr);
        c->auto_next = unindexed + thr;
    }
    qx_monitor_status st;
    if (!why[0] && has_index && qxs_drift_status(c, &st) && st.state == QX_MONITOR_DRIFTED &&
        st.drifted_events > c->auto_drift_events) {
        snprintf(why, sizeof why, "the drift monitor reports drifted (event %llu)",
                 (unsigned long long)st.drifted_events);
        c->auto_drift_events = st.drifted_events;
    }
    if (!why[0]) return 0;
    qxs_rebuild_params p;
    auto_params(c, &p);
    int rc = qxs_rebuild_start(s, c, &p, job_id);
    if (rc) {
        if (rc != QX_EEXIST)
            qxs_log(QXS_LOG_WARN, "collection %s: automatic rebuild not started (%s): %s", c->name, why, qx_last_error());
        return 0;
    }
    qxs_log(QXS_LOG_INFO, "collection %s: automatic rebuild, job %llu: %s", c->name, (unsigned long long)*job_id, why);
    return 1;
}

void qxs_autoindex_all(qxs_server *s) {
    size_t n;
    qxs_coll **v = qxs_coll_all_refs(s, &n);
    for (size_t i = 0; v && i < n; i++) {
        uint64_t job;
        qxs_autoindex_check(s, v[i], &job);
        qxs_coll_put(v[i]);
    }
    qx_free(v);
}
