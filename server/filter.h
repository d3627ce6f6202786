/* server/filter.h — Qdrant filters: parsed form, parser and evaluator.
 *
 * A filter is must / should / must_not / min_should over conditions; a
 * condition is a field condition (match value|any|except|text, range) on a
 * key path, is_empty, is_null, has_id, nested, or a filter itself.
 *
 * Key paths: "a.b.c" walks objects; an array met on the way is walked
 * element by element (so "tags.name" reaches every tags[i].name); "a[]"
 * says so explicitly and "a[2]" picks one element. The leaf values of a
 * path are what it reaches, with an array at the end flattened one level.
 *
 * Semantics (per point; "values" = the non-null leaf values of the key):
 *   match value / any  some value equals one given (string, integer, bool;
 *                      types must agree: 1 never equals 1.0 or "1")
 *   match except       no value at all, or some value is none of the given
 *   match text         some string value contains the text (substring)
 *   range              some numeric value satisfies every bound given
 *   is_empty           no values (key missing, null, [] or only nulls)
 *   is_null            the key is present and null (or an array element is)
 *   has_id             the point id is one of those given
 *   nested             some element of the array at key passes the filter
 *   filter             must: all pass; should: one passes (if any given);
 *                      must_not: none passes; min_should: at least
 *                      min_count of its conditions pass.
 */
#ifndef QXS_FILTER_H
#define QXS_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pointid.h"

enum {
    QXS_C_FILTER = 1, QXS_C_MATCH_VALUE, QXS_C_MATCH_ANY, QXS_C_MATCH_EXCEPT, QXS_C_MATCH_TEXT,
    QXS_C_RANGE, QXS_C_HAS_ID, QXS_C_IS_EMPTY, QXS_C_IS_NULL, QXS_C_NESTED
};

/* a scalar value: of a condition, or a leaf of a payload */
enum { QXS_FV_STR = 1, QXS_FV_INT, QXS_FV_REAL, QXS_FV_BOOL, QXS_FV_OTHER };
typedef struct qxs_fv {
    uint8_t t;
    const char *s; /* QXS_FV_STR: not NUL-terminated */
    size_t len;
    int64_t i;     /* QXS_FV_INT, QXS_FV_BOOL (0/1) */
    double d;      /* QXS_FV_REAL, and QXS_FV_INT as a double */
} qxs_fv;

typedef struct qxs_pseg {
    char *key;     /* object key, or NULL for an array step */
    long idx;      /* array step: -1 = every element ([]), else one index */
} qxs_pseg;

struct qxs_filter;
struct qxs_pindex;

typedef struct qxs_cond {
    int kind;
    char *key;              /* field conditions, is_empty, is_null, nested */
    qxs_pseg *path;
    size_t npath;
    qxs_fv *vals;           /* match value (1), any, except; text: vals[0] */
    size_t nvals;
    double gt, gte, lt, lte;
    uint8_t has_gt, has_gte, has_lt, has_lte;
    qxs_pid *ids;           /* has_id */
    size_t nids;
    struct qxs_filter *sub; /* QXS_C_FILTER, QXS_C_NESTED */
    /* set by the planner for one request: a payload index that answers this
     * condition (its values stand for the payload's) */
    const struct qxs_pindex *pidx;
} qxs_cond;

typedef struct qxs_filter {
    qxs_cond *must, *should, *must_not, *min_should;
    size_t nmust, nshould, nmust_not, nmin_should;
    size_t min_count;
    int has_min_should;
    json_t *owned;          /* strings in conditions point into this copy */
} qxs_filter;

/* Parse j (an object, or JSON null = no filter: *out = NULL). where names the
 * filter in messages ("filter"). 0, or -1 with err naming the path of the bad
 * part, e.g. "filter.must[2].range.gt: must be a number". */
int qxs_filter_parse(const json_t *j, const char *where, qxs_filter **out, char *err, size_t errcap);
void qxs_filter_free(qxs_filter *f);

/* What the evaluator needs of one point. */
typedef struct qxs_fpoint {
    const qxs_pid *id;
    int64_t key;                   /* the store's row key (payload index lookups) */
    const json_t *payload;         /* the payload object, or NULL */
    /* when payload is NULL and load is set, it is called once, on the first
     * condition that needs the payload (lazily: index-answered filters never
     * parse it); it returns a new reference or NULL (no payload) */
    json_t *(*load)(void *ctx, int64_t key);
    void *load_ctx;
    json_t *loaded;                /* owned: set by the evaluator */
} qxs_fpoint;

/* 1 if the point passes (a NULL filter passes every point). Call
 * qxs_fpoint_done afterwards when load was set. */
int qxs_filter_match(const qxs_filter *f, qxs_fpoint *p);
void qxs_fpoint_done(qxs_fpoint *p);

/* Leaf values (non-null) of a path in a payload, through a callback that
 * returns nonzero to stop. Also reports whether a null was met. */
typedef int (*qxs_leaf_fn)(void *ctx, const qxs_fv *v);
void qxs_path_leaves(const json_t *payload, const qxs_pseg *path, size_t npath, qxs_leaf_fn fn, void *ctx,
                     int *saw_null);
/* Parse a key path ("a.b[].c", "a[3]"); 0 or -1 (err filled). */
int qxs_path_parse(const char *key, qxs_pseg **path, size_t *npath, char *err, size_t errcap);
void qxs_path_free(qxs_pseg *path, size_t npath);
/* The JSON scalar as a qxs_fv (strings point into j). */
void qxs_fv_of_json(const json_t *j, qxs_fv *v);

/* Calls fn on every condition (recursively, depth first) — the planner binds
 * payload indexes with it. */
void qxs_filter_walk(qxs_filter *f, void (*fn)(void *ctx, qxs_cond *c), void *ctx);

#endif
