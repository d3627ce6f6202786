/* qinx/gate.h — the DERP gate: checks a candidate index before it is
 * published in place of a live one.
 *
 * Checks (each with a threshold; docs/derp.md explains how to tune them):
 *   min_used_fraction   the least-used step's fraction of codewords in use
 *                       (catches collapsed codebooks)           } DERP's
 *   min_perplexity      the lowest step's usage perplexity / 256 } standard
 *   max_drift_rejected_fraction  fraction of random probes whose } checks
 *                       two-sample K–S test rejects "training     } (derp.h)
 *                       reservoir and indexed data agree"        }
 *   max_drift_score     largest K–S distance over probes (off by default)
 *   max_mse_ratio       MSE of the indexed data over the MSE of the training
 *                       sample (catches codebooks trained on other data)
 *   min_recall          10-recall@10 of the candidate on queries sampled from
 *                       the data, exact neighbours from FAISS flat search
 *   max_recall_drop     live recall minus candidate recall on the same
 *                       queries (only when a live index exists)
 * Each check has a policy (qx_derp_policy): block (the default) or warn.
 * The drift checks warn by default: drift alone is reported as a warning
 * while health, mse_ratio and recall pass; it fails the gate when one of
 * those fails too. Without held-out recall (queries = 0) every check
 * blocks: nothing then vouches for a drifted candidate.
 * Residual normality per step is in the report (health) but not gated:
 * real residuals are rarely Gaussian.
 * A file that fails to load (truncated, corrupt) fails the gate before any
 * of these. Everything is deterministic for a seed.
 * Thread-safety: qx_gate_evaluate only reads the indexes (const): searches
 * may run on them concurrently.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_GATE_H
#define QINX_GATE_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

#include "qinx/derp.h"
#include "qinx/ivf.h"

QX_BEGIN_DECLS

/* The gate's checks, for per-check policies. */
typedef enum qx_gate_check {
    QX_GATE_MIN_USED_FRACTION = 0,
    QX_GATE_MIN_PERPLEXITY,
    QX_GATE_MAX_DRIFT_REJECTED_FRACTION,
    QX_GATE_MAX_DRIFT_SCORE,
    QX_GATE_MAX_MSE_RATIO,
    QX_GATE_MIN_RECALL,
    QX_GATE_MAX_RECALL_DROP,
    QX_GATE_NUM_CHECKS
} qx_gate_check;

/* The check's name in reports and config files ("min_recall", ...), or NULL. */
const char *qx_gate_check_name(qx_gate_check c);

typedef struct qx_gate_config {
    qx_derp_thresholds derp_checks; /* qx_derp_thresholds_init defaults */
    double max_mse_ratio;         /* default 3.0 (healthy: 1.0-1.7, see docs/derp.md) */
    double min_recall;            /* default 0.30 (10-recall@10) */
    double max_recall_drop;       /* default 0.05 */
    size_t queries;               /* sampled queries (default 200; 0 skips the recall checks) */
    size_t nprobe;                /* nprobe of the recall check (default 16) */
    size_t sample;                /* data vectors used for health (default 10000) */
    uint64_t seed;                /* default 1234 */
    qx_derp_opts derp;            /* probes, alpha, min_effect, … */
    qx_derp_policy policy[QX_GATE_NUM_CHECKS]; /* default: the two drift
                                     checks QX_DERP_WARN, the rest BLOCK */
} qx_gate_config;

void qx_gate_config_init(qx_gate_config *cfg);

/* Read "key = value" lines (# comments) over the defaults. Keys are the
 * field names above (derp.probes, derp.alpha, derp.min_effect also
 * accepted) and policy.<check name> = block | warn. Unknown keys, bad
 * numbers and out-of-range values are errors naming the line. */
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

QX_END_DECLS
#endif
