/* verify/gate.c — the DERP gate (see include/qinx/gate.h): codebook health
 * and drift from verify/derp_*, plus a held-out recall check, each compared
 * with a threshold from the config.
 *
 * Decisions:
 * 1. Health is measured on residuals (x − nearest centroid), the space the
 *    quantizer was trained on, over an evenly strided sample of the data:
 *    deterministic, and cheap next to a build (10k of 331k vectors).
 * 2. Drift and mse_ratio compare the data with the reservoir of training
 *    vectors saved in the candidate, so a candidate trained on other data
 *    than it indexes is caught even without a live index.
 * 3. Health and drift thresholds are DERP's standard checks
 *    (qx_derp_report_add_standard_checks); drift is gated on the fraction of
 *    probes that reject, not on the Holm family decision, which at α = 0.05
 *    would fail about 1 healthy rebuild in 20. The Holm result is reported.
 * 4. Policies: drift warns by default (see gate.h). A significant drift
 *    with a small effect no longer fails at all (opts.min_effect); a large
 *    one is reported, and blocks only alongside a real loss (health, MSE or
 *    recall). The planted faults each fail a block check.
 * 5. Recall queries are data vectors picked by a seeded generator; exact
 *    neighbours come from FAISS flat search, so the check needs no ground
 *    truth file.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>

#include "internal.h"
#include "qinx/derp.h"
#include "qinx/gate.h"
#include "qinx/ivf.h"

static const char *const check_names[QX_GATE_NUM_CHECKS] = {
    "min_used_fraction", "min_perplexity", "max_drift_rejected_fraction", "max_drift_score",
    "max_mse_ratio",     "min_recall",     "max_recall_drop"};

const char *qx_gate_check_name(qx_gate_check c) {
    return (unsigned)c < QX_GATE_NUM_CHECKS ? check_names[c] : NULL;
}

void qx_gate_config_init(qx_gate_config *c) {
    memset(c, 0, sizeof *c);
    qx_derp_thresholds_init(&c->derp_checks);
    c->max_mse_ratio = 3.0;
    c->min_recall = 0.30;
    c->max_recall_drop = 0.05;
    c->queries = 200;
    c->nprobe = 16;
    c->sample = 10000;
    c->seed = 1234;
    qx_derp_opts_init(&c->derp);
    for (int i = 0; i < QX_GATE_NUM_CHECKS; i++) c->policy[i] = QX_DERP_BLOCK;
    c->policy[QX_GATE_MAX_DRIFT_REJECTED_FRACTION] = QX_DERP_WARN;
    c->policy[QX_GATE_MAX_DRIFT_SCORE] = QX_DERP_WARN;
}

/* "policy.<check> = block|warn": 1 if the line was one (rc set), 0 if not. */
static int parse_policy(const char *key, const char *val, qx_gate_config *c, const char *path,
                        int lineno, int *rc) {
    if (strncmp(key, "policy.", 7) != 0) return 0;
    char v[16];
    size_t n = 0;
    while (isspace((unsigned char)*val)) val++;
    while (val[n] && !isspace((unsigned char)val[n]) && n < sizeof v - 1) v[n] = val[n], n++;
    v[n] = '\0';
    const char *rest = val + n;
    while (isspace((unsigned char)*rest)) rest++;
    qx_derp_policy pol;
    if (!strcmp(v, "block") && !*rest) pol = QX_DERP_BLOCK;
    else if (!strcmp(v, "warn") && !*rest) pol = QX_DERP_WARN;
    else {
        *rc = qx__fail(QX_EINVAL, "%s:%d: '%s' is block or warn", path, lineno, key);
        return 1;
    }
    for (int i = 0; i < QX_GATE_NUM_CHECKS; i++)
        if (!strcmp(key + 7, check_names[i])) {
            c->policy[i] = pol;
            return 1;
        }
    *rc = qx__fail(QX_EINVAL, "%s:%d: unknown check in '%s'", path, lineno, key);
    return 1;
}

int qx_gate_config_load(const char *path, qx_gate_config *c) {
    FILE *f = fopen(path, "r");
    if (!f) return qx__fail(QX_EIO, "%s: %s", path, strerror(errno));
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line, *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        while (isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        char key[64];
        double v;
        char *eq = strchr(s, '=');
        if (!eq || eq - s >= (long)sizeof key) {
            rc = qx__fail(QX_EINVAL, "%s:%d: expected 'key = value'", path, lineno);
            break;
        }
        size_t kl = (size_t)(eq - s);
        while (kl && isspace((unsigned char)s[kl - 1])) kl--;
        memcpy(key, s, kl);
        key[kl] = '\0';
        if (parse_policy(key, eq + 1, c, path, lineno, &rc)) continue;
        char *end;
        errno = 0;
        v = strtod(eq + 1, &end);
        while (isspace((unsigned char)*end)) end++;
        if (errno || end == eq + 1 || *end || !isfinite(v) || v < 0) {
            rc = qx__fail(QX_EINVAL, "%s:%d: '%s' needs a non-negative number", path, lineno, key);
            break;
        }
        struct { const char *name; double *d; size_t *z; double max; } keys[] = {
            {"min_used_fraction", &c->derp_checks.min_used_fraction, NULL, 1},
            {"min_perplexity", &c->derp_checks.min_perplexity, NULL, 1},
            {"max_drift_rejected_fraction", &c->derp_checks.max_drift_rejected_fraction, NULL, 1},
            {"max_drift_score", &c->derp_checks.max_drift_score, NULL, 1},
            {"max_mse_ratio", &c->max_mse_ratio, NULL, 1e9},
            {"min_recall", &c->min_recall, NULL, 1},
            {"max_recall_drop", &c->max_recall_drop, NULL, 1},
            {"queries", NULL, &c->queries, 100000},
            {"nprobe", NULL, &c->nprobe, QX_MAX_NLIST},
            {"sample", NULL, &c->sample, 1e9},
            {"derp.probes", NULL, &c->derp.probes, QX_DERP_MAX_PROBES},
            {"derp.alpha", &c->derp.alpha, NULL, 0.5},
            {"derp.min_effect", &c->derp.min_effect, NULL, 1e3},
            {"min_drift_effect", &c->derp.min_effect, NULL, 1e3},
        };
        size_t i;
        for (i = 0; i < sizeof keys / sizeof *keys; i++) {
            if (strcmp(keys[i].name, key) != 0) continue;
            if (v > keys[i].max) {
                rc = qx__fail(QX_EINVAL, "%s:%d: %s = %g is above %g", path, lineno, key, v, keys[i].max);
            } else if (keys[i].d) {
                *keys[i].d = v;
            } else if (v != floor(v) || v < 1) {
                rc = qx__fail(QX_EINVAL, "%s:%d: %s needs a whole number >= 1", path, lineno, key);
            } else {
                *keys[i].z = (size_t)v;
            }
            break;
        }
        if (rc == 0 && i == sizeof keys / sizeof *keys)
            rc = qx__fail(QX_EINVAL, "%s:%d: unknown key '%s'", path, lineno, key);
    }
    fclose(f);
    return rc;
}

/* 10-recall@10 of ivf on the queries (exact neighbour ids in gt, 10 each). */
static int recall_of(const qx_ivf *ivf, const float *q, size_t nq, const int64_t *gt,
                     size_t nprobe, double *out) {
    float *dist = qx__malloc(sizeof(float) * nq * 10);
    int64_t *got = qx__malloc(sizeof(int64_t) * nq * 10);
    int rc = 0;
    if (!dist || !got) rc = qx__fail(QX_ENOMEM, "gate: recall buffers");
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    if (rc == 0) rc = qx_ivf_search(ivf, NULL, q, nq, 10, &p, dist, got);
    size_t inter = 0;
    for (size_t i = 0; rc == 0 && i < nq; i++)
        for (size_t j = 0; j < 10; j++)
            for (size_t t = 0; t < 10; t++)
                if (got[i * 10 + j] >= 0 && got[i * 10 + j] == gt[i * 10 + t]) {
                    inter++;
                    break;
                }
    if (rc == 0) *out = (double)inter / (10.0 * (double)nq);
    qx__free(dist);
    qx__free(got);
    return rc;
}

static int exact_knn10(const float *data, size_t n, size_t d, const float *q, size_t nq,
                       const int64_t *ids, int64_t *gt) {
    FaissIndexFlatL2 *flat = NULL;
    float *dist = qx__malloc(sizeof(float) * nq * 10);
    if (!dist) return qx__fail(QX_ENOMEM, "gate: exact search");
    int rc = 0;
    if (faiss_IndexFlatL2_new_with(&flat, (idx_t)d) || faiss_Index_add(flat, (idx_t)n, data) ||
        faiss_Index_search(flat, (idx_t)nq, q, 10, dist, gt))
        rc = qx__fail(QX_EFAISS, "gate: exact search: %s", faiss_get_last_error());
    faiss_Index_free(flat);
    qx__free(dist);
    for (size_t i = 0; rc == 0 && ids && i < nq * 10; i++)
        if (gt[i] >= 0) gt[i] = ids[gt[i]];
    return rc;
}

/* The centroid of each of n lists (n × d), newly allocated into *out. */
static int centroid_rows(const qx_ivf *ivf, const uint32_t *lists, size_t n, float **out) {
    size_t d = qx_quantizer_dim(qx_ivf_quantizer(ivf));
    float *c = qx__aligned_alloc(sizeof(float) * (n ? n : 1) * d);
    if (!c) return qx__fail(QX_ENOMEM, "gate: contexts of %zu vectors", n);
    qx_ivf_centroid_rows(ivf, lists, n, c);
    *out = c;
    return 0;
}

int qx_gate_evaluate(const qx_ivf *cand, const qx_ivf *live, const float *data,
                     const int64_t *ids, size_t n, const qx_gate_config *cfg,
                     qx_derp_report **report, int *passed) {
    qx_gate_config def;
    if (!cfg) qx_gate_config_init(&def), cfg = &def;
    if (!cand || !data || !report || !passed) return qx__fail(QX_EINVAL, "gate: NULL argument");
    if (n < 20) return qx__fail(QX_EINVAL, "gate: %zu data vectors, need at least 20", n);
    *report = NULL;
    *passed = 0;
    size_t d = qx_quantizer_dim(qx_ivf_quantizer(cand)), ns = n < cfg->sample ? n : cfg->sample;
    size_t nq = cfg->queries < n ? cfg->queries : n;
    const qx_derp_reservoir *res = qx_ivf_reservoir(cand);
    float *sample = qx__aligned_alloc(sizeof(float) * ns * d);
    float *sres = qx__aligned_alloc(sizeof(float) * ns * d);
    uint32_t *lists = qx__malloc(sizeof(uint32_t) * (ns > 0 ? ns : 1));
    float *queries = qx__aligned_alloc(sizeof(float) * (nq ? nq : 1) * d);
    int64_t *gt = qx__malloc(sizeof(int64_t) * (nq ? nq : 1) * 10);
    float *tres = NULL, *sctx = NULL, *tctx = NULL;
    uint32_t *tlists = NULL;
    qx_derp_health *health = NULL;
    qx_derp_drift drift;
    memset(&drift, 0, sizeof drift);
    qx_derp_report *rep = NULL;
    int rc = 0;
    if (!sample || !sres || !lists || !queries || !gt) {
        rc = qx__fail(QX_ENOMEM, "gate: %zu sample vectors", ns);
        goto out;
    }
    qx__sample_rows(data, n, d, ns, sample);
    if ((rc = qx_derp_report_new(&rep, &cfg->derp))) goto out;
    qx_derp_report_set_meta(rep, "stage", "candidate");
    /* Without held-out recall nothing vouches for a drifted candidate. */
    for (int i = 0; i < QX_GATE_NUM_CHECKS; i++)
        if ((rc = qx_derp_report_set_policy(rep, check_names[i],
                                            nq ? cfg->policy[i] : QX_DERP_BLOCK)))
            goto out;
    if (nq == 0) qx_derp_report_set_meta(rep, "policy", "every check blocks: no recall check");
    int pass;

    /* Health of the codebooks on the data's residuals. */
    if ((rc = qx_ivf_residuals(cand, sample, ns, lists, sres))) goto out;
    /* a quantizer that uses contexts (QINCo conditioned on the centroid) is
     * measured as the index encodes: with each residual's centroid */
    const qx_quantizer *cq = qx_ivf_quantizer(cand);
    if (qx_quantizer_uses_context(cq) && (rc = centroid_rows(cand, lists, ns, &sctx))) goto out;
    if ((rc = qx_derp_health_compute_ctx(cq, sres, sctx, ns, NULL, &cfg->derp, &health))) goto out;
    if ((rc = qx_derp_report_set_health(rep, health))) goto out;
    const qx_derp_step *last = &health->steps[health->M - 1];
    int drift_done = 0;

    /* Against the training sample: MSE ratio and drift. */
    if (res && qx_derp_reservoir_size(res) >= 20) {
        size_t nt = qx_derp_reservoir_size(res);
        const float *tv = qx_derp_reservoir_data(res);
        tres = qx__aligned_alloc(sizeof(float) * nt * d);
        tlists = qx__malloc(sizeof(uint32_t) * nt);
        if (!tres || !tlists) {
            rc = qx__fail(QX_ENOMEM, "gate: reservoir residuals");
            goto out;
        }
        if ((rc = qx_ivf_residuals(cand, tv, nt, tlists, tres))) goto out;
        double mt = 0, md = last->mse;
        if (sctx && (rc = centroid_rows(cand, tlists, nt, &tctx))) goto out;
        if ((rc = qx_quantizer_mse_ctx(cq, tres, tctx, nt, 0, &mt))) goto out;
        double ratio = mt > 0 ? md / mt : (md > 0 ? INFINITY : 1.0);
        if ((rc = qx_derp_drift_compute(tv, nt, sample, ns, d, &cfg->derp, &drift))) goto out;
        if ((rc = qx_derp_report_set_drift(rep, &drift))) goto out;
        drift_done = 1;
        if ((rc = qx_derp_report_add_standard_checks(rep, health, &drift, &cfg->derp_checks, NULL)))
            goto out;
        qx_derp_report_add_check(rep, "max_mse_ratio", ratio, cfg->max_mse_ratio, QX_DERP_LE, &pass);
    }
    if (!drift_done) {
        if ((rc = qx_derp_report_add_standard_checks(rep, health, NULL, &cfg->derp_checks, NULL)))
            goto out;
        qx_derp_report_set_meta(rep, "drift", "skipped: the candidate holds no training reservoir");
    }

    /* Held-out recall against exact search (queries = 0 skips it). */
    if (nq == 0) {
        qx_derp_report_set_meta(rep, "recall", "skipped");
        goto verdict;
    }
    uint64_t s = cfg->seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < nq; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        memcpy(queries + i * d, data + (size_t)(s % n) * d, sizeof(float) * d);
    }
    if ((rc = exact_knn10(data, n, d, queries, nq, ids, gt))) goto out;
    double rcand = 0, rlive = 0;
    if ((rc = recall_of(cand, queries, nq, gt, cfg->nprobe, &rcand))) goto out;
    qx_derp_report_add_check(rep, "min_recall", rcand, cfg->min_recall, QX_DERP_GE, &pass);
    if (live && qx_quantizer_dim(qx_ivf_quantizer(live)) == d) {
        if ((rc = recall_of(live, queries, nq, gt, cfg->nprobe, &rlive))) goto out;
        qx_derp_report_add_check(rep, "max_recall_drop", rlive - rcand, cfg->max_recall_drop, QX_DERP_LE, &pass);
    }
verdict:
    *passed = qx_derp_report_passed(rep);
    qx_derp_report_set_meta(rep, "verdict", !*passed ? "fail"
                                            : qx_derp_report_num_warnings(rep) ? "pass with warnings"
                                                                             : "pass");
    *report = rep;
    rep = NULL;
out:
    qx_derp_report_free(rep);
    qx_derp_health_free(health);
    qx_derp_drift_clear(&drift);
    qx__aligned_free(sample);
    qx__aligned_free(sres);
    qx__aligned_free(tres);
    qx__aligned_free(sctx);
    qx__aligned_free(tctx);
    qx__aligned_free(queries);
    qx__free(lists);
    qx__free(tlists);
    qx__free(gt);
    return rc;
}

int qx_gate_write_report(const qx_derp_report *r, const char *path) {
    char *json = NULL;
    size_t len = 0;
    int rc = qx_derp_report_json(r, &json, &len);
    if (rc) return rc;
    rc = qx__write_atomic(path, (const uint8_t *)json, len);
    qx__free(json);
    return rc;
}
