/* qinx/monitor.h — live drift monitoring of a stream of written vectors.
 *
 * A monitor holds a reference sample (the training reservoir of the index
 * serving the data, or, until there is one, a uniform sample of the first
 * writes) and a bounded reservoir of recent writes. Writes are cut into
 * windows of opts.window vectors; the recent reservoir is a uniform sample
 * (Algorithm R) of the current window. At the end of each window DERP's
 * two-sample test runs on every probe (K–S significance and the Wasserstein
 * effect, as the rebuild gate's drift check), and, when an index is given,
 * the recent sample is encoded to measure codeword usage of recent codes.
 * A window is "drifting" when the fraction of probes that moved exceeds
 * opts.max_rejected_fraction. The state is
 *   ok        no recent window drifted,
 *   drifting  the last window(s) drifted, fewer than opts.drifted_after in a row,
 *   drifted   opts.drifted_after windows in a row drifted; it stays until
 *             opts.ok_after clean windows in a row (or a new reference).
 * A shift is reported as drifted within (drifted_after + 1) windows of
 * writes after it starts (the window under way when it starts may be mixed).
 *
 * Conventions: qinx/defs.h. Thread-safety: a monitor is not locked. qx_monitor_add and
 * qx_monitor_set_reference need exclusive access; qx_monitor_get_status may
 * run concurrently with other get_status calls only.
 */
#ifndef QINX_MONITOR_H
#define QINX_MONITOR_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

#include "qinx/derp.h"
#include "qinx/ivf.h"

QX_BEGIN_DECLS

typedef enum qx_monitor_state {
    QX_MONITOR_OK = 0,
    QX_MONITOR_DRIFTING = 1,
    QX_MONITOR_DRIFTED = 2
} qx_monitor_state;

/* "ok", "drifting", "drifted" (NULL for other values). */
const char *qx_monitor_state_name(qx_monitor_state s);

typedef struct qx_monitor_opts {
    size_t window;          /* writes per check (default 2000, >= 20) */
    size_t recent;          /* capacity of the recent reservoir (default
                               1000, 20..window) */
    size_t reference;       /* capacity of the reference sample (default
                               10000); without a reference set, the first
                               `reference` writes form it */
    size_t drifted_after;   /* drifting windows in a row to be drifted (default 2) */
    size_t ok_after;        /* clean windows in a row to leave drifted (default 2) */
    size_t encode_max;      /* at most this many recent vectors are encoded
                               for codeword usage per check (default 500) */
    double max_rejected_fraction; /* a window drifts when more probes than
                                     this moved (default 0.25, as the gate) */
    qx_derp_opts derp;      /* probes (default 32 here), alpha, min_effect
                               (default 0.1 here: windows are small) */
    uint64_t seed;          /* reservoir seed (default 1) */
} qx_monitor_opts;

void qx_monitor_opts_init(qx_monitor_opts *o);

typedef struct qx_monitor_status {
    qx_monitor_state state;
    uint64_t writes;          /* vectors offered in total */
    uint64_t checks;          /* windows tested */
    uint64_t drifting_windows;/* windows that drifted */
    uint64_t drifted_events;  /* transitions into drifted */
    size_t reference_size;    /* vectors in the reference (0 = still filling) */
    int reference_from_index; /* 1 if the reference came from an index */
    size_t run;               /* drifting windows in a row (or clean ones while drifted) */
    /* The last check (NaN before the first): */
    double rejected_fraction; /* probes significant with effect >= min_effect */
    double score;             /* largest K–S D over probes */
    double effect;            /* largest W (reference sds) over probes */
    double p_combined;        /* Holm family p-value */
    double code_used_fraction;/* smallest fraction of codewords used by the
                                 recent codes over steps (NaN without index) */
    double code_perplexity;   /* smallest usage perplexity / 256 over steps */
} qx_monitor_status;

typedef struct qx_monitor qx_monitor;

/* A monitor for d-vectors. ref (nref d-vectors, copied; may be NULL / 0)
 * is the reference; without one it fills from the first writes. opts NULL =
 * defaults. */
int qx_monitor_new(qx_monitor **out, size_t d, const float *ref, size_t nref,
                   const qx_monitor_opts *opts);
void qx_monitor_free(qx_monitor *m); /* NULL-safe */

/* Replace the reference (e.g. after a rebuild: the new index's training
 * reservoir; from_index = 1) and start over: state ok, a fresh window. */
int qx_monitor_set_reference(qx_monitor *m, const float *ref, size_t nref, int from_index);

/* Offer n written vectors in order (NaN/Inf rejected before anything
 * changes). Each window that completes is tested at once; ivf (may be NULL)
 * is the index serving the data, used to encode up to encode_max recent
 * vectors for codeword usage. *checked (may be NULL) = windows tested. */
int qx_monitor_add(qx_monitor *m, const float *x, size_t n, const qx_ivf *ivf, size_t *checked);

int qx_monitor_get_status(const qx_monitor *m, qx_monitor_status *st);

QX_END_DECLS
#endif
