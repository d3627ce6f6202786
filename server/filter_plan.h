/* server/filter_plan.h — filters evaluated against a collection (bindings to
 * its payload indexes, the per-point test, the planner's estimates). The
 * caller holds the read side of the collection's rwlock throughout. */
#ifndef QXS_FILTER_PLAN_H
#define QXS_FILTER_PLAN_H

#include "filter.h"
#include "srv.h"

/* Below this many estimated passing points (or n / QXS_FILTER_EXACT_DIV), a
 * filtered search scores exactly the points that pass. */
#define QXS_FILTER_EXACT_MIN 4096
#define QXS_FILTER_EXACT_DIV 16

typedef struct qxs_fsearch {
    const qxs_coll *c;
    const qxs_filter *f;
} qxs_fsearch;

void qxs_filter_bind(const qxs_coll *c, qxs_filter *f);
/* Does the point with this row key pass (NULL filter: yes)? */
int qxs_filter_passes(const qxs_coll *c, const qxs_filter *f, int64_t key);
/* The IVF filter callback (ctx: a qxs_fsearch). */
int qxs_filter_cb(void *ctx, int64_t key);
/* Payload of key parsed (new reference) or NULL; ctx is the collection. */
json_t *qxs_payload_load(void *ctx, int64_t key);
/* Estimated passing points from the indexes, -1 if unknown; *best = the must
 * condition that gave it. */
long long qxs_filter_estimate(const qxs_filter *f, const qxs_cond **best);
/* The keys that pass f, listed through best's index (sorted, distinct). */
int qxs_filter_candidates(const qxs_coll *c, const qxs_filter *f, const qxs_cond *best, int64_t **keys,
                          size_t *n);

#endif
