/* server/filter_plan.h — filters against a collection: the per-point test
 * (through the store's contract calls), the planner's estimate and its
 * candidate lists, and the filtered search built on them. */
#ifndef QXS_FILTER_PLAN_H
#define QXS_FILTER_PLAN_H

#include "filter.h"
#include "srv.h"

/* Below this many estimated passing points (or n / QXS_FILTER_EXACT_DIV), a
 * filtered search scores exactly the points that pass. */
#define QXS_FILTER_EXACT_MIN 4096
#define QXS_FILTER_EXACT_DIV 16
/* Up to this fraction of the points passing (and a listable filter), an IVF
 * collection scores the passing points from their codes instead of probing. */
#define QXS_FILTER_AMONG_FRAC 0.5

/* Does a point pass? payload: its bytes (may be NULL/0), or load = 1 to
 * fetch them through qxs_coll_get_key_locked when a condition needs them
 * (the caller holds the collection's read lock either way). */
int qxs_filter_test(qxs_coll *c, const qxs_filter *f, const qxs_pid *id, int64_t rowkey, const uint8_t *payload,
                    uint32_t plen, int load);

/* The planner (f bound to the payload indexes, whose set's read lock the
 * caller holds): fills o (only_keys when few pass, else the per-candidate
 * filter) and may allocate *keys (qx_free after the search). est receives
 * the estimate (-1 unknown). */
typedef struct qxs_fsearch {
    qxs_coll *c;
    const qxs_filter *f;
} qxs_fsearch;
int qxs_filter_plan(qxs_coll *c, qxs_filter *f, qxs_fsearch *ctx, qxs_search_opts *o, int64_t **keys,
                    long long *est);

#endif
