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
/* A probing scan whose candidates in its first nprobe lists passed
 * QXS_FILTER_CORR_RATIO times less often than the whole set passes (over at
 * least QX_FILTER_STOP_MIN_TESTED tested) met a filter correlated with the
 * vectors: it stops there, and the query is searched again over the listed
 * passing points, exactly up to QXS_FILTER_AMONG_FRAC of the collection,
 * above it from their codes. */
#define QXS_FILTER_CORR_RATIO 2
#define QXS_FILTER_AMONG_FRAC 0.25

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
/* After a probing scan that tested `tested` candidates and passed `passed`
 * in its first nprobe lists: 1 when the scan stopped there because the
 * filter proved correlated with the vectors, and o now holds the listed
 * passing points (only_keys or among_keys; *keys to free); 0 to keep the
 * scan's answer; or a negative QX_E code. */
int qxs_filter_replan(qxs_coll *c, qxs_filter *f, qxs_fsearch *ctx, qxs_search_opts *o, int64_t **keys,
                      size_t tested, size_t passed);

#endif
