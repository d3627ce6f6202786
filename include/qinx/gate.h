/* qinx/gate.h — the DERP gate: checks a candidate index before it is
 * published in place of a live one.
 *
 * Checks (each with a threshold; docs/derp.md explains how to tune them):
 *   used_fraction.min   the least-used step's fraction of codewords in use
 *                       (catches collapsed codebooks)
 *   perplexity.min      the lowest step's usage perplexity / 256
 *   mse_ratio           MSE of the indexed data over the MSE of the training
 *                       sample (catches codebooks trained on other data)
 *   drift               largest two-sample K–S distance over random probes
 *                       between the training reservoir and the indexed data
 *   recall              10-recall@10 of the candidate on queries sampled from
 *                       the data, exact neighbours from FAISS flat search
 *   recall_drop         live recall minus candidate recall on the same
 *                       queries (only when a live index exists)
 *   residual_rejected   fraction of probes rejecting normality of the last
 *                       step's residuals (reported; gating off by default,
 *                       as real residuals are rarely Gaussian)
 * A file that fails to load (truncated, corrupt) fails the gate before any
 * of these. Everything is deterministic for a seed.
 * Thread-safety: qx_gate_evaluate only reads the indexes (const): searches
 * may run on them concurrently.
 */
#ifndef QINX_GATE_H
#define QINX_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "qinx/derp.h"
#include "qinx/ivf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qx_gate_config {
    double min_used_fraction;     /* default 0.5 */
    double min_perplexity;        /* default 0.3 */
    double max_mse_ratio;         /* default 1.5 */
    double max_drift;             /* default 0.10 (K–S distance) */
    double min_recall;            /* default 0.30 (10-recall@10) */
    double max_recall_drop;       /* default 0.05 */
    double max_residual_rejected; /* default 1.0 = report only */
    size_t queries;               /* sampled queries (default 200; 0 skips the recall checks) */
    size_t nprobe;                /* nprobe of the recall check (default 16) */
    size_t sample;                /* data vectors used for health (default 10000) */
    uint64_t seed;                /* default 1234 */
    qx_derp_opts derp;            /* probes, alpha, … */
} qx_gate_config;

void qx_gate_config_init(qx_gate_config *cfg);

/* Read "key = value" lines (# comments) over the defaults. Keys are the
 * field names above (derp.probes, derp.alpha also accepted). Unknown keys,
 * bad numbers and out-of-range values are errors naming the line. */
int qx_gate_config_load(const char *path, qx_gate_config *cfg);

/* Run every check on cand over the data it indexes: n vectors with their
 * ids (NULL = row numbers 0..n-1). The reference for drift and mse_ratio is
 * the training reservoir stored in cand (qx_ivf_reservoir). live may be NULL.
 * *report receives the DERP report with one entry per check (free with
 * qx_derp_report_free); *passed is 1 if all passed. */
int qx_gate_evaluate(const qx_ivf *cand, const qx_ivf *live, const float *data,
                     const int64_t *ids, size_t n, const qx_gate_config *cfg,
                     qx_derp_report **report, int *passed);

/* Write the report's JSON to path atomically (temp file, fsync, rename). */
int qx_gate_write_report(const qx_derp_report *r, const char *path);

#ifdef __cplusplus
}
#endif
#endif
