/* verify/monitor.c — live drift monitoring (include/qinx/monitor.h): a
 * reference sample, a reservoir of the current window of writes, and at the
 * end of each window DERP's two-sample test (significance and Wasserstein
 * effect per probe) plus codeword usage of the recent vectors' codes.
 *
 * Decisions:
 * 1. Windows, not a sliding reservoir: each check sees a uniform sample of
 *    one window of writes (Algorithm R, so a window larger than the
 *    reservoir costs nothing more), and windows do not overlap, so their
 *    tests are independent under a stationary stream and "k windows in a
 *    row" has a simple false-alarm rate.
 * 2. The reference's projections are sorted once, when it is set: a check
 *    only projects and sorts the recent sample (P x recent values), so the
 *    monitor is cheap enough to run inside the write path.
 * 3. A window drifts on the same rule as the rebuild gate's drift check:
 *    the fraction of probes both significant (raw p <= alpha) and moved by
 *    W >= min_effect reference standard deviations. Requiring several
 *    drifting windows in a row for "drifted" (hysteresis both ways) keeps
 *    one odd batch from flapping the state.
 * 4. Without an index the reference is the first `reference` writes: the
 *    best the server has, and documented as such; an index's training
 *    reservoir replaces it as soon as one is built.
 */
#include <math.h>
#include <string.h>

#include "derp_impl.h"
#include "qinx/monitor.h"
#include "qinx/quantizer.h"

struct qx_monitor {
    size_t d, P;
    qx_monitor_opts o;
    float *probes;            /* P x d */
    float *ref;               /* nref x d (copy) */
    size_t nref;
    double *ref_sorted;       /* P x nref, each probe's projections ascending */
    qx_derp_reservoir *fill;  /* filling the reference from writes, or NULL */
    qx_derp_reservoir *recent;/* the current window */
    uint64_t in_window;
    size_t bad_run, good_run;
    qx_monitor_status st;
};

const char *qx_monitor_state_name(qx_monitor_state s) {
    switch (s) {
    case QX_MONITOR_OK: return "ok";
    case QX_MONITOR_DRIFTING: return "drifting";
    case QX_MONITOR_DRIFTED: return "drifted";
    }
    return NULL;
}

void qx_monitor_opts_init(qx_monitor_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->window = 2000;
    o->recent = 1000;
    o->reference = QX_DERP_DEFAULT_RESERVOIR;
    o->drifted_after = 2;
    o->ok_after = 2;
    o->encode_max = 500;
    o->max_rejected_fraction = 0.25;
    qx_derp_opts_init(&o->derp);
    o->derp.probes = 32;
    /* Windows of 1,000 vectors: the null W reaches 0.08 (test_monitor), so
     * the bar is higher than the gate's 0.05 (10,000 vectors a side). */
    o->derp.min_effect = 0.1;
    o->seed = 1;
}

static void reset_last(qx_monitor_status *st) {
    st->rejected_fraction = st->score = st->effect = st->p_combined = NAN;
    st->code_used_fraction = st->code_perplexity = NAN;
}

static int new_window(qx_monitor *m) {
    qx_derp_reservoir_free(m->recent);
    m->recent = NULL;
    m->in_window = 0;
    return qx_derp_reservoir_new(&m->recent, m->d, m->o.recent,
                                 m->o.seed * 0x9E3779B97F4A7C15ull + m->st.checks);
}

/* Copy the reference and sort its projections on every probe. */
static int take_reference(qx_monitor *m, const float *ref, size_t nref) {
    size_t bytes, pbytes;
    if (!qx__mul3(nref, m->d, sizeof(float), &bytes) || !qx__mul3(nref, m->P, sizeof(double), &pbytes))
        return qx__fail(QX_ENOMEM, "monitor: reference of %zu vectors", nref);
    float *copy = qx__aligned_alloc(bytes), *proj = qx__aligned_alloc(nref * m->P * sizeof(float));
    double *sorted = qx__malloc(pbytes);
    uint32_t *tmp = qx__malloc(2 * nref * sizeof(uint32_t));
    int rc = 0;
    if (!copy || !proj || !sorted || !tmp) rc = qx__fail(QX_ENOMEM, "monitor: reference of %zu vectors", nref);
    if (rc == 0) {
        memcpy(copy, ref, bytes);
        rc = qx_derp_project(copy, nref, m->d, m->probes, m->P, proj);
    }
    for (size_t p = 0; rc == 0 && p < m->P; p++) {
        for (size_t i = 0; i < nref; i++)
            if (!isfinite(proj[p * nref + i])) rc = qx__fail(QX_EINVAL, "monitor: reference projection overflows");
        if (rc == 0) qx__derp_sort_floats(proj + p * nref, nref, sorted + p * nref, tmp);
    }
    qx__aligned_free(proj);
    qx__free(tmp);
    if (rc) {
        qx__aligned_free(copy);
        qx__free(sorted);
        return rc;
    }
    qx__aligned_free(m->ref);
    qx__free(m->ref_sorted);
    m->ref = copy;
    m->ref_sorted = sorted;
    m->nref = nref;
    return 0;
}

int qx_monitor_new(qx_monitor **out, size_t d, const float *ref, size_t nref,
                   const qx_monitor_opts *opts) {
    if (!out) return qx__fail(QX_EINVAL, "monitor: NULL output");
    *out = NULL;
    qx_monitor_opts o;
    if (opts) o = *opts;
    else qx_monitor_opts_init(&o);
    if (d < 1 || d > QX_MAX_DIM) return qx__fail(QX_EDIM, "monitor: d=%zu, must be 1..%d", d, QX_MAX_DIM);
    if (o.window < 20 || o.recent < 20 || o.recent > o.window || o.recent > QX_DERP_MAX_RESERVOIR)
        return qx__fail(QX_EINVAL, "monitor: window=%zu recent=%zu (need 20 <= recent <= window)",
                        o.window, o.recent);
    if (o.reference < 20 || o.reference > QX_DERP_MAX_RESERVOIR || o.drifted_after < 1 || o.ok_after < 1)
        return qx__fail(QX_EINVAL, "monitor: reference=%zu drifted_after=%zu ok_after=%zu out of range",
                        o.reference, o.drifted_after, o.ok_after);
    if (!(o.max_rejected_fraction >= 0 && o.max_rejected_fraction <= 1))
        return qx__fail(QX_EINVAL, "monitor: max_rejected_fraction=%g, must be in [0, 1]",
                        o.max_rejected_fraction);
    if (ref && nref && nref < 20) return qx__fail(QX_EINVAL, "monitor: reference of %zu vectors, need >= 20", nref);
    qx_derp_opts dop;
    int rc = qx__derp_opts_check(&o.derp, &dop);
    if (rc) return rc;
    o.derp = dop;
    qx_monitor *m = qx__calloc(1, sizeof *m);
    if (!m) return qx__fail(QX_ENOMEM, "monitor");
    m->d = d;
    m->P = o.derp.probes;
    m->o = o;
    reset_last(&m->st);
    m->probes = qx__aligned_alloc(m->P * d * sizeof(float));
    if (!m->probes) rc = qx__fail(QX_ENOMEM, "monitor: probes");
    if (rc == 0) rc = qx_derp_probes_make(m->P, d, o.derp.seed, m->probes);
    if (rc == 0) rc = qx_monitor_set_reference(m, ref, ref ? nref : 0, 0);
    if (rc) {
        qx_monitor_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void qx_monitor_free(qx_monitor *m) {
    if (!m) return;
    qx__aligned_free(m->probes);
    qx__aligned_free(m->ref);
    qx__free(m->ref_sorted);
    qx_derp_reservoir_free(m->fill);
    qx_derp_reservoir_free(m->recent);
    qx__free(m);
}

int qx_monitor_set_reference(qx_monitor *m, const float *ref, size_t nref, int from_index) {
    if (!m) return qx__fail(QX_EINVAL, "monitor: NULL monitor");
    int rc = 0;
    if (ref && nref) {
        if (nref < 20) return qx__fail(QX_EINVAL, "monitor: reference of %zu vectors, need >= 20", nref);
        if ((rc = take_reference(m, ref, nref))) return rc;
        qx_derp_reservoir_free(m->fill);
        m->fill = NULL;
    } else {
        qx_derp_reservoir *f = NULL;
        if ((rc = qx_derp_reservoir_new(&f, m->d, m->o.reference, m->o.seed))) return rc;
        qx_derp_reservoir_free(m->fill);
        m->fill = f;
        qx__aligned_free(m->ref);
        qx__free(m->ref_sorted);
        m->ref = NULL;
        m->ref_sorted = NULL;
        m->nref = 0;
    }
    m->st.reference_from_index = ref && nref && from_index;
    m->st.reference_size = m->nref;
    m->st.state = QX_MONITOR_OK;
    m->bad_run = m->good_run = 0;
    m->st.run = 0;
    reset_last(&m->st);
    return new_window(m);
}

/* Codeword usage of the first n recent vectors' codes under ivf. */
static void code_usage(qx_monitor *m, const qx_ivf *ivf, const float *x, size_t n) {
    const qx_quantizer *q = ivf ? qx_ivf_quantizer(ivf) : NULL;
    if (!q || qx_quantizer_dim(q) != m->d || n == 0) return;
    size_t M = qx_quantizer_steps(q);
    float *res = qx__aligned_alloc(n * m->d * sizeof(float));
    uint32_t *lists = qx__malloc(n * sizeof(uint32_t));
    uint8_t *codes = qx__malloc(n * M);
    /* a quantizer that uses contexts encodes with each residual's centroid */
    int uses_ctx = qx_quantizer_uses_context(q);
    float *ctx = uses_ctx ? qx__aligned_alloc(n * m->d * sizeof(float)) : NULL;
    int ok = res && lists && codes && (ctx || !uses_ctx) && qx_ivf_residuals(ivf, x, n, lists, res) == 0;
    if (ok && ctx) qx_ivf_centroid_rows(ivf, lists, n, ctx);
    if (ok && qx_quantizer_encode_ctx(q, res, ctx, n, codes) == 0) {
        double umin = 1, pmin = 1;
        size_t nib = qx__derp_nibble_bytes(q);
        for (size_t s = 0; s < M; s++) {
            qx_derp_step st;
            qx__derp_usage(codes, n, M, s, s < nib, &st);
            umin = fmin(umin, st.used_fraction);
            pmin = fmin(pmin, st.perplexity);
        }
        m->st.code_used_fraction = umin;
        m->st.code_perplexity = pmin;
    }
    qx__aligned_free(res);
    qx__aligned_free(ctx);
    qx__free(lists);
    qx__free(codes);
}

/* Test the window that just completed and move the state. */
static int check_window(qx_monitor *m, const qx_ivf *ivf) {
    size_t R = qx_derp_reservoir_size(m->recent), P = m->P;
    const float *x = qx_derp_reservoir_data(m->recent);
    float *proj = qx__aligned_alloc(P * R * sizeof(float));
    double *v = qx__malloc(R * sizeof(double));
    uint32_t *tmp = qx__malloc(2 * R * sizeof(uint32_t));
    qx_derp_family f;
    memset(&f, 0, sizeof f);
    int rc = 0;
    if (!proj || !v || !tmp) rc = qx__fail(QX_ENOMEM, "monitor: check of %zu vectors", R);
    if (rc == 0) rc = qx_derp_project(x, R, m->d, m->probes, P, proj);
    if (rc == 0) rc = qx__derp_family_alloc(&f, P, m->o.derp.alpha);
    if (rc == 0 && !(f.W = qx__calloc(P, sizeof(double)))) rc = qx__fail(QX_ENOMEM, "monitor: effects");
    f.min_effect = m->o.derp.min_effect;
    for (size_t p = 0; rc == 0 && p < P; p++) {
        for (size_t i = 0; i < R; i++)
            if (!isfinite(proj[p * R + i])) rc = qx__fail(QX_EINVAL, "monitor: projection overflows");
        if (rc) break;
        qx__derp_sort_floats(proj + p * R, R, v, tmp);
        const double *r = m->ref_sorted + p * m->nref;
        f.D[p] = qx__derp_ks2_sorted(r, m->nref, v, R);
        f.p[p] = qx__derp_ks2_pvalue(f.D[p], m->nref, R);
        qx__derp_w1_sorted(r, m->nref, v, R, &f.W[p]);
    }
    if (rc == 0) {
        f.n_ref = m->nref;
        f.n = R;
        rc = qx__derp_family_finish(&f);
    }
    if (rc == 0) {
        qx_monitor_status *st = &m->st;
        st->checks++;
        st->rejected_fraction = f.rejected_fraction;
        st->score = f.D_max;
        st->effect = f.W_max;
        st->p_combined = f.p_combined;
        code_usage(m, ivf, x, R < m->o.encode_max ? R : m->o.encode_max);
        int drifting = f.rejected_fraction > m->o.max_rejected_fraction;
        if (drifting) st->drifting_windows++;
        if (st->state == QX_MONITOR_DRIFTED) {
            m->good_run = drifting ? 0 : m->good_run + 1;
            if (m->good_run >= m->o.ok_after) {
                st->state = QX_MONITOR_OK;
                m->bad_run = m->good_run = 0;
            }
        } else if (drifting) {
            m->bad_run++;
            if (m->bad_run >= m->o.drifted_after) {
                st->state = QX_MONITOR_DRIFTED;
                st->drifted_events++;
                m->good_run = 0;
            } else {
                st->state = QX_MONITOR_DRIFTING;
            }
        } else {
            st->state = QX_MONITOR_OK;
            m->bad_run = 0;
        }
        st->run = st->state == QX_MONITOR_DRIFTED ? m->good_run : m->bad_run;
    }
    qx_derp_family_clear(&f);
    qx__aligned_free(proj);
    qx__free(v);
    qx__free(tmp);
    return rc;
}

int qx_monitor_add(qx_monitor *m, const float *x, size_t n, const qx_ivf *ivf, size_t *checked) {
    if (checked) *checked = 0;
    if (!m || (!x && n)) return qx__fail(QX_EINVAL, "monitor add: NULL argument");
    size_t total;
    if (!qx__mul(n, m->d, &total)) return qx__fail(QX_EINVAL, "monitor add: n*d overflows");
    long bad = qx__first_nonfinite(x, total);
    if (bad >= 0)
        return qx__fail(QX_EINVAL, "monitor add: vector %zu has a NaN or Inf", (size_t)bad / m->d);
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < n) {
        if (m->fill) {
            /* Filling the reference from the first writes. */
            uint64_t left = m->o.reference - qx_derp_reservoir_seen(m->fill);
            size_t k = n - i < left ? n - i : (size_t)left;
            if ((rc = qx_derp_reservoir_add(m->fill, x + i * m->d, k))) break;
            i += k;
            m->st.writes += k;
            if (qx_derp_reservoir_seen(m->fill) >= m->o.reference) {
                rc = take_reference(m, qx_derp_reservoir_data(m->fill), qx_derp_reservoir_size(m->fill));
                if (rc) break;
                qx_derp_reservoir_free(m->fill);
                m->fill = NULL;
                m->st.reference_size = m->nref;
            }
            continue;
        }
        uint64_t left = m->o.window - m->in_window;
        size_t k = n - i < left ? n - i : (size_t)left;
        if ((rc = qx_derp_reservoir_add(m->recent, x + i * m->d, k))) break;
        i += k;
        m->in_window += k;
        m->st.writes += k;
        if (m->in_window >= m->o.window) {
            if ((rc = check_window(m, ivf))) break;
            if (checked) (*checked)++;
            rc = new_window(m);
        }
    }
    return rc;
}

int qx_monitor_get_status(const qx_monitor *m, qx_monitor_status *st) {
    if (!m || !st) return qx__fail(QX_EINVAL, "monitor status: NULL argument");
    *st = m->st;
    return 0;
}
