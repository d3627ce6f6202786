/* server/filter_eval.c — evaluation of a parsed filter on one point
 * (filter.h for the semantics).
 *
 * Decisions:
 * 1. A condition the planner bound to a payload index reads the point's
 *    values from the index (no JSON parsing); the index holds exactly the
 *    non-null leaf values of its key (payload_index.c refuses payloads whose
 *    values it cannot hold), so both sources give the same answer.
 * 2. The payload is loaded lazily, once per point, only when a condition
 *    needs it; clauses stop at the first deciding condition.
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "filter.h"
#include "payload_index.h"

typedef void (*raw_fn)(void *ctx, const json_t *v);

/* Visit what path reaches in v; a final array is flattened one level. */
static void walk(const json_t *v, const qxs_pseg *p, size_t n, raw_fn fn, void *ctx) {
    if (n == 0) {
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) fn(ctx, e);
        } else {
            fn(ctx, v);
        }
        return;
    }
    if (p->key) {
        if (json_is_object(v)) {
            json_t *c = json_object_get(v, p->key);
            if (c) walk(c, p + 1, n - 1, fn, ctx);
        } else if (json_is_array(v)) { /* implicit: every element */
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) if (json_is_object(e) || json_is_array(e)) walk(e, p, n, fn, ctx);
        }
        return;
    }
    if (!json_is_array(v)) return;
    if (p->idx >= 0) {
        json_t *e = json_array_get(v, (size_t)p->idx);
        if (e) walk(e, p + 1, n - 1, fn, ctx);
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) walk(e, p + 1, n - 1, fn, ctx);
}

typedef struct leaves_ctx {
    qxs_leaf_fn fn;
    void *ctx;
    int *saw_null;
    int stop;
} leaves_ctx;

static void leaf_raw(void *ctx, const json_t *v) {
    leaves_ctx *l = ctx;
    if (l->stop) return;
    if (json_is_null(v)) {
        if (l->saw_null) *l->saw_null = 1;
        return;
    }
    qxs_fv fv;
    qxs_fv_of_json(v, &fv);
    if (l->fn && l->fn(l->ctx, &fv)) l->stop = 1;
}

void qxs_path_leaves(const json_t *payload, const qxs_pseg *path, size_t npath, qxs_leaf_fn fn, void *ctx,
                     int *saw_null) {
    if (saw_null) *saw_null = 0;
    if (!payload) return;
    leaves_ctx l = {fn, ctx, saw_null, 0};
    walk(payload, path, npath, leaf_raw, &l);
}

static int fv_eq(const qxs_fv *a, const qxs_fv *b) {
    if (a->t != b->t) return 0;
    if (a->t == QXS_FV_STR) return a->len == b->len && !memcmp(a->s, b->s, a->len);
    return a->i == b->i; /* INT, BOOL */
}

static int in_set(const qxs_cond *c, const qxs_fv *v) {
    for (size_t i = 0; i < c->nvals; i++)
        if (fv_eq(&c->vals[i], v)) return 1;
    return 0;
}

static int contains(const qxs_fv *hay, const qxs_fv *needle) {
    if (needle->len == 0) return 1;
    if (needle->len > hay->len) return 0;
    return memmem(hay->s, hay->len, needle->s, needle->len) != NULL;
}

/* Does one leaf value satisfy the condition (match / range)? */
static int leaf_ok(const qxs_cond *c, const qxs_fv *v) {
    switch (c->kind) {
    case QXS_C_MATCH_VALUE:
    case QXS_C_MATCH_ANY: return in_set(c, v);
    case QXS_C_MATCH_EXCEPT: return !in_set(c, v);
    case QXS_C_MATCH_TEXT: return v->t == QXS_FV_STR && contains(v, &c->vals[0]);
    case QXS_C_RANGE:
        if (v->t != QXS_FV_INT && v->t != QXS_FV_REAL) return 0;
        return (!c->has_gt || v->d > c->gt) && (!c->has_gte || v->d >= c->gte) && (!c->has_lt || v->d < c->lt) &&
               (!c->has_lte || v->d <= c->lte);
    default: return 0;
    }
}

typedef struct any_ctx {
    const qxs_cond *c;
    int hit;
    size_t count;
} any_ctx;

static int any_leaf(void *ctx, const qxs_fv *v) {
    any_ctx *a = ctx;
    a->count++;
    if (a->c->kind == QXS_C_IS_EMPTY) return 1; /* one value decides */
    if (leaf_ok(a->c, v)) a->hit = 1;
    return a->hit;
}

static const json_t *payload_of(qxs_fpoint *p) {
    if (p->payload) return p->payload;
    if (!p->loaded && p->load) {
        p->loaded = p->load(p->load_ctx, p->key);
        if (!p->loaded) p->load = NULL; /* none: do not ask again */
    }
    return p->loaded;
}

typedef struct nest_ctx {
    const qxs_filter *f;
    const qxs_fpoint *outer;
    int hit;
} nest_ctx;

static void nested_elem(void *ctx, const json_t *e) {
    nest_ctx *n = ctx;
    if (n->hit || !json_is_object(e)) return;
    qxs_fpoint q = {.id = n->outer->id, .key = n->outer->key, .payload = e};
    if (qxs_filter_match(n->f, &q)) n->hit = 1;
}

static int cond_ok(const qxs_cond *c, qxs_fpoint *p) {
    switch (c->kind) {
    case QXS_C_FILTER: return qxs_filter_match(c->sub, p);
    case QXS_C_HAS_ID:
        for (size_t i = 0; i < c->nids; i++)
            if (qxs_pid_eq(&c->ids[i], p->id)) return 1;
        return 0;
    case QXS_C_NESTED: {
        const json_t *pl = payload_of(p);
        nest_ctx n = {c->sub, p, 0};
        if (pl) walk(pl, c->path, c->npath, nested_elem, &n);
        return n.hit;
    }
    case QXS_C_IS_NULL: {
        int saw = 0;
        qxs_path_leaves(payload_of(p), c->path, c->npath, NULL, NULL, &saw);
        return saw;
    }
    default: break;
    }
    any_ctx a = {c, 0, 0};
    if (c->pidx) qxs_pindex_each(c->pidx, p->key, any_leaf, &a);
    else qxs_path_leaves(payload_of(p), c->path, c->npath, any_leaf, &a, NULL);
    if (c->kind == QXS_C_IS_EMPTY) return a.count == 0;
    if (c->kind == QXS_C_MATCH_EXCEPT) return a.count == 0 || a.hit;
    return a.hit;
}

int qxs_filter_match(const qxs_filter *f, qxs_fpoint *p) {
    if (!f) return 1;
    for (size_t i = 0; i < f->nmust; i++)
        if (!cond_ok(&f->must[i], p)) return 0;
    for (size_t i = 0; i < f->nmust_not; i++)
        if (cond_ok(&f->must_not[i], p)) return 0;
    if (f->nshould) {
        size_t i = 0;
        while (i < f->nshould && !cond_ok(&f->should[i], p)) i++;
        if (i == f->nshould) return 0;
    }
    if (f->has_min_should) {
        size_t hits = 0;
        for (size_t i = 0; i < f->nmin_should && hits < f->min_count; i++) hits += (size_t)cond_ok(&f->min_should[i], p);
        if (hits < f->min_count) return 0;
    }
    return 1;
}

void qxs_fpoint_done(qxs_fpoint *p) {
    json_decref(p->loaded);
    p->loaded = NULL;
}
