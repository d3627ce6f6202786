/* server/drift.c — the glue between collections and the library's live
 * drift monitor (include/qinx/monitor.h): every applied upsert is offered
 * to the collection's monitor, whose state goes out in GET
 * /collections/{name} ("drift") and in /metrics.
 *
 * Decisions:
 * 1. Observed under the collection's writer mutex, right after the upsert is
 *    applied: writes reach the monitor in WAL order, and c->ivf cannot be
 *    swapped meanwhile (swaps take wmu too), so the monitor may encode with
 *    it. The monitor has its own mutex (mon_mu) so readers (info, metrics)
 *    never wait on wmu.
 * 2. The reference is the serving index's training reservoir; a published
 *    rebuild replaces it at once (qxs_drift_index_changed, under wmu), which
 *    starts the state over: a `drifted` that started the rebuild does not
 *    outlive it. Before any index it is the first 10,000
 *    writes the monitor sees. State is in memory: a restart starts over
 *    (WAL replay is not fed to the monitor).
 * 3. A monitor failure (out of memory) is logged and the monitor dropped:
 *    monitoring must never fail a write.
 * 4. A new "drifted" event starts a rebuild by itself (autoindex.c, on the
 *    merger thread), gated like any other.
 */
#include <math.h>

#include <jansson.h>

#include "qinx/derp.h"
#include "qinx/error.h"
#include "qinx/monitor.h"
#include "srv.h"

/* Under mon_mu and wmu: the monitor exists and its reference is the serving
 * index's reservoir (or the first writes while there is none). */
static int sync_reference(qxs_coll *c) {
    const qx_derp_reservoir *res = c->ivf ? qx_ivf_reservoir(c->ivf) : NULL;
    int from_index = res && qx_derp_reservoir_size(res) >= 20;
    if (!c->mon) {
        c->mon_gen = from_index ? c->ivf_gen : 0;
        return qx_monitor_new(&c->mon, c->d, from_index ? qx_derp_reservoir_data(res) : NULL,
                              from_index ? qx_derp_reservoir_size(res) : 0, NULL);
    }
    if (!from_index || c->mon_gen == c->ivf_gen) return 0;
    c->mon_gen = c->ivf_gen;
    return qx_monitor_set_reference(c->mon, qx_derp_reservoir_data(res), qx_derp_reservoir_size(res), 1);
}

static void monitor_failed(qxs_coll *c) {
    qxs_log(QXS_LOG_WARN, "collection %s: drift monitor stopped: %s", c->name, qx_last_error());
    qx_monitor_free(c->mon);
    c->mon = NULL;
    c->mon_failed = 1;
}

void qxs_drift_observe(qxs_coll *c, const float *x, size_t n) {
    pthread_mutex_lock(&c->mon_mu);
    int rc = sync_reference(c);
    if (rc == 0) rc = qx_monitor_add(c->mon, x, n, c->ivf, NULL);
    if (rc) monitor_failed(c);
    pthread_mutex_unlock(&c->mon_mu);
}

void qxs_drift_index_changed(qxs_coll *c) {
    pthread_mutex_lock(&c->mon_mu);
    if (c->mon && sync_reference(c)) monitor_failed(c);
    pthread_mutex_unlock(&c->mon_mu);
}

int qxs_drift_status(qxs_coll *c, qx_monitor_status *st) {
    pthread_mutex_lock(&c->mon_mu);
    int have = c->mon && qx_monitor_get_status(c->mon, st) == 0;
    pthread_mutex_unlock(&c->mon_mu);
    return have;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *qxs_drift_json(qxs_coll *c) {
    qx_monitor_status st;
    if (!qxs_drift_status(c, &st))
        return json_pack("{s:s, s:I}", "state", c->mon_failed ? "stopped" : "ok", "writes", (json_int_t)0);
    json_t *last = json_object();
    json_object_set_new(last, "rejected_fraction", num_or_null(st.rejected_fraction));
    json_object_set_new(last, "score", num_or_null(st.score));
    json_object_set_new(last, "effect", num_or_null(st.effect));
    json_object_set_new(last, "p_combined", num_or_null(st.p_combined));
    json_object_set_new(last, "code_used_fraction", num_or_null(st.code_used_fraction));
    json_object_set_new(last, "code_perplexity", num_or_null(st.code_perplexity));
    const char *ref = st.reference_size == 0 ? "filling" : st.reference_from_index ? "index" : "first_writes";
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:o}", "state", qx_monitor_state_name(st.state),
                     "writes", (json_int_t)st.writes, "checks", (json_int_t)st.checks, "drifting_windows",
                     (json_int_t)st.drifting_windows, "drifted_events", (json_int_t)st.drifted_events,
                     "reference", ref, "reference_size", (json_int_t)st.reference_size, "last", last);
}
