/* server/filter_plan.c — filters against a collection: binding conditions to
 * payload indexes, the per-point test (ids and payloads from points_meta),
 * the planner's estimate and its candidate lists.
 *
 * Decisions:
 * 1. Bound index pointers are valid only while the caller holds the read side
 *    of the collection's rwlock (an index drop frees its index under the
 *    write side): bind and evaluate under one read lock.
 * 2. The estimate is the smallest count of a must condition an index
 *    answers (exact for single-valued fields); anything else is unknown,
 *    and the planner then relies on the IVF scan that tests every candidate.
 */
#include <stdlib.h>
#include <string.h>

#include "filter_plan.h"
#include "internal.h"
#include "payload_index.h"

static void bind_one(void *ctx, qxs_cond *c) {
    const qxs_coll *coll = ctx;
    c->pidx = NULL;
    for (size_t k = 0; k < coll->npidx; k++)
        if (qxs_pindex_answers(coll->pidx[k], c)) {
            c->pidx = coll->pidx[k];
            return;
        }
}

void qxs_filter_bind(const qxs_coll *c, qxs_filter *f) { qxs_filter_walk(f, bind_one, (void *)c); }

json_t *qxs_payload_load(void *ctx, int64_t key) {
    const qxs_coll *c = ctx;
    uint32_t len;
    const char *b = qxs_pmeta_payload(&c->pm, key, &len);
    return b ? json_loadb(b, len, 0, NULL) : NULL;
}

int qxs_filter_passes(const qxs_coll *c, const qxs_filter *f, int64_t key) {
    if (!f) return 1;
    qxs_pid pid = qxs_pmeta_pid(&c->pm, key);
    qxs_fpoint p = {.id = &pid, .key = key, .load = qxs_payload_load, .load_ctx = (void *)c};
    int r = qxs_filter_match(f, &p);
    qxs_fpoint_done(&p);
    return r;
}

int qxs_filter_cb(void *ctx, int64_t key) {
    const qxs_fsearch *s = ctx;
    return qxs_filter_passes(s->c, s->f, key);
}

long long qxs_filter_estimate(const qxs_filter *f, const qxs_cond **best) {
    long long est = -1;
    *best = NULL;
    if (!f) return -1;
    for (size_t i = 0; i < f->nmust; i++) {
        const qxs_cond *c = &f->must[i];
        if (!c->pidx) continue;
        long long n = qxs_pindex_count(c->pidx, c);
        if (n >= 0 && (est < 0 || n < est)) est = n, *best = c;
    }
    return est;
}

typedef struct klist {
    int64_t *k;
    size_t n, cap;
    int oom;
} klist;

static void add_key(void *ctx, int64_t key) {
    klist *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *k = qx__realloc(l->k, cap * sizeof *k);
        if (!k) {
            l->oom = 1;
            return;
        }
        l->k = k, l->cap = cap;
    }
    if (l->n < l->cap) l->k[l->n++] = key;
}

static int cmp_key(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int qxs_filter_candidates(const qxs_coll *c, const qxs_filter *f, const qxs_cond *best, int64_t **keys,
                          size_t *n) {
    klist l = {0};
    if (qxs_pindex_keys(best->pidx, best, add_key, &l) || l.oom) {
        qx__free(l.k);
        return qx__fail(QX_ENOMEM, "filter candidates");
    }
    qsort(l.k, l.n, sizeof *l.k, cmp_key);
    size_t m = 0;
    for (size_t i = 0; i < l.n; i++)
        if ((m == 0 || l.k[m - 1] != l.k[i]) && qxs_filter_passes(c, f, l.k[i])) l.k[m++] = l.k[i];
    *keys = l.k;
    *n = m;
    return 0;
}
