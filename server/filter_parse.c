/* server/filter_parse.c — Qdrant filter JSON -> qxs_filter (filter.h).
 *
 * Decisions:
 * 1. Every error names the path of the bad part in the request, built as the
 *    parser descends ("filter.must[2].range.gt"), so a client sees which of
 *    its conditions is wrong; unknown keys are errors (a typo never silently
 *    matches everything).
 * 2. A clause may be one condition or an array of them, as Qdrant accepts.
 * 3. Strings of conditions point into the request's JSON, which the filter
 *    holds a reference to (no copies).
 * 4. Conditions qinx does not evaluate (geo_*, values_count, datetime
 *    ranges, match phrase) are refused by name, not ignored.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "pointid_json.h"

/* A message's path is cut at the buffer's end in absurdly deep filters; that
 * truncation is intended, not a bug the compiler should warn about. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define MAX_DEPTH 32
#define MAX_PATH 64

typedef struct pctx {
    char *err;
    size_t cap;
    int depth;
} pctx;

static int perr(pctx *c, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(pctx *c, const char *where, const char *fmt, ...) {
    int n = snprintf(c->err, c->cap, "%s: ", where);
    if (n < 0 || (size_t)n >= c->cap) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dupn(const char *s, size_t n) {
    char *d = qx_malloc(n + 1);
    if (d) memcpy(d, s, n), d[n] = 0;
    return d;
}

void qxs_path_free(qxs_pseg *path, size_t npath) {
    for (size_t i = 0; i < npath; i++) qx_free(path[i].key);
    qx_free(path);
}

int qxs_path_parse(const char *key, qxs_pseg **out, size_t *nout, char *err, size_t errcap) {
    qxs_pseg *p = qx_calloc(MAX_PATH, sizeof *p);
    size_t n = 0;
    const char *s = key;
    if (!p) return snprintf(err, errcap, "out of memory"), -1;
    if (!*s) goto bad;
    while (*s) {
        if (n == MAX_PATH) {
            snprintf(err, errcap, "key '%.60s' has more than %d steps", key, MAX_PATH);
            qxs_path_free(p, n);
            return -1;
        }
        if (*s == '[') {
            if (n == 0) goto bad;
            s++;
            long idx = -1;
            if (*s != ']') {
                char *e;
                if (*s < '0' || *s > '9') goto bad;
                idx = strtol(s, &e, 10);
                if (idx < 0 || idx > 1000000000L) goto bad;
                s = e;
            }
            if (*s != ']') goto bad;
            s++;
            p[n].key = NULL;
            p[n].idx = idx;
            n++;
            if (*s == '.') {
                s++;
                if (!*s || *s == '.' || *s == '[') goto bad;
            } else if (*s && *s != '[') goto bad;
            continue;
        }
        size_t len = strcspn(s, ".[");
        if (len == 0) goto bad;
        p[n].key = dupn(s, len);
        p[n].idx = 0;
        if (!p[n].key) goto bad;
        n++;
        s += len;
        if (*s == '.') {
            s++;
            if (!*s || *s == '.' || *s == '[') goto bad;
        }
    }
    *out = p;
    *nout = n;
    return 0;
bad:
    snprintf(err, errcap, "'%.60s' is not a valid key path (a.b.c, a[].b, a[3])", key);
    qxs_path_free(p, n);
    return -1;
}

void qxs_fv_of_json(const json_t *j, qxs_fv *v) {
    memset(v, 0, sizeof *v);
    if (json_is_string(j)) {
        v->t = QXS_FV_STR;
        v->s = json_string_value(j);
        v->len = json_string_length(j);
    } else if (json_is_integer(j)) {
        v->t = QXS_FV_INT;
        v->i = json_integer_value(j);
        v->d = (double)v->i;
    } else if (json_is_real(j)) {
        v->t = QXS_FV_REAL;
        v->d = json_real_value(j);
    } else if (json_is_boolean(j)) {
        v->t = QXS_FV_BOOL;
        v->i = json_is_true(j);
    } else {
        v->t = QXS_FV_OTHER;
    }
}

static void cond_free(qxs_cond *c) {
    qxs_path_free(c->path, c->npath);
    qx_free(c->vals);
    qx_free(c->ids);
    qxs_filter_free(c->sub);
}

static void conds_free(qxs_cond *v, size_t n) {
    for (size_t i = 0; i < n; i++) cond_free(&v[i]);
    qx_free(v);
}

void qxs_filter_free(qxs_filter *f) {
    if (!f) return;
    conds_free(f->must, f->nmust);
    conds_free(f->should, f->nshould);
    conds_free(f->must_not, f->nmust_not);
    conds_free(f->min_should, f->nmin_should);
    json_decref(f->owned);
    qx_free(f);
}

static int parse_filter(pctx *c, const json_t *j, const char *where, qxs_filter **out);

static int parse_key(pctx *c, const json_t *obj, const char *where, qxs_cond *k) {
    json_t *key = json_object_get(obj, "key");
    char w[512];
    snprintf(w, sizeof w, "%s.key", where);
    if (!key) return perr(c, where, "missing 'key'");
    if (!json_is_string(key)) return perr(c, w, "must be a string");
    k->key = (char *)json_string_value(key);
    char e[200];
    if (qxs_path_parse(k->key, &k->path, &k->npath, e, sizeof e)) return perr(c, w, "%s", e);
    return 0;
}

/* a match value: string, integer or bool */
static int match_scalar(pctx *c, const json_t *v, const char *where, qxs_fv *out) {
    if (!json_is_string(v) && !json_is_integer(v) && !json_is_boolean(v))
        return perr(c, where, "must be a string, an integer or a boolean");
    qxs_fv_of_json(v, out);
    return 0;
}

static int parse_match(pctx *c, const json_t *m, const char *where, qxs_cond *k) {
    char w[512];
    if (!json_is_object(m)) return perr(c, where, "must be an object ({\"value\": …}, {\"any\": […]}, {\"except\": […]} or {\"text\": …})");
    if (json_object_size(m) != 1)
        return perr(c, where, "must have exactly one of 'value', 'any', 'except', 'text'");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)m, name, v) {
        snprintf(w, sizeof w, "%s.%s", where, name);
        if (!strcmp(name, "value")) {
            k->kind = QXS_C_MATCH_VALUE;
            k->vals = qx_calloc(1, sizeof *k->vals);
            if (!k->vals) return perr(c, w, "out of memory");
            k->nvals = 1;
            return match_scalar(c, v, w, &k->vals[0]);
        }
        if (!strcmp(name, "text")) {
            k->kind = QXS_C_MATCH_TEXT;
            if (!json_is_string(v)) return perr(c, w, "must be a string");
            k->vals = qx_calloc(1, sizeof *k->vals);
            if (!k->vals) return perr(c, w, "out of memory");
            k->nvals = 1;
            qxs_fv_of_json(v, &k->vals[0]);
            return 0;
        }
        if (!strcmp(name, "any") || !strcmp(name, "except")) {
            k->kind = name[0] == 'a' ? QXS_C_MATCH_ANY : QXS_C_MATCH_EXCEPT;
            if (!json_is_array(v)) return perr(c, w, "must be an array of strings or of integers");
            size_t n = json_array_size(v);
            k->vals = qx_calloc(n ? n : 1, sizeof *k->vals);
            if (!k->vals) return perr(c, w, "out of memory");
            k->nvals = n;
            for (size_t i = 0; i < n; i++) {
                char wi[560];
                snprintf(wi, sizeof wi, "%s[%zu]", w, i);
                json_t *x = json_array_get(v, i);
                if (!json_is_string(x) && !json_is_integer(x))
                    return perr(c, wi, "must be a string or an integer");
                qxs_fv_of_json(x, &k->vals[i]);
                if (i > 0 && k->vals[i].t != k->vals[0].t)
                    return perr(c, wi, "mixes strings and integers (all must be of one type)");
            }
            return 0;
        }
        if (!strcmp(name, "phrase")) return perr(c, w, "match 'phrase' is not supported (use 'text')");
        return perr(c, w, "unknown match kind (value, any, except or text)");
    }
    return -1;
}

static int parse_range(pctx *c, const json_t *r, const char *where, qxs_cond *k) {
    char w[512];
    if (!json_is_object(r)) return perr(c, where, "must be an object of bounds (gt, gte, lt, lte)");
    k->kind = QXS_C_RANGE;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)r, name, v) {
        snprintf(w, sizeof w, "%s.%s", where, name);
        double *dst;
        uint8_t *has;
        if (!strcmp(name, "gt")) dst = &k->gt, has = &k->has_gt;
        else if (!strcmp(name, "gte")) dst = &k->gte, has = &k->has_gte;
        else if (!strcmp(name, "lt")) dst = &k->lt, has = &k->has_lt;
        else if (!strcmp(name, "lte")) dst = &k->lte, has = &k->has_lte;
        else return perr(c, w, "unknown range bound (gt, gte, lt or lte)");
        if (json_is_null(v)) continue;
        if (json_is_string(v)) return perr(c, w, "must be a number (datetime ranges are not supported)");
        if (!json_is_number(v) || !isfinite(json_number_value(v))) return perr(c, w, "must be a number");
        *dst = json_number_value(v);
        *has = 1;
    }
    return 0;
}

static int parse_has_id(pctx *c, const json_t *v, const char *where, qxs_cond *k) {
    k->kind = QXS_C_HAS_ID;
    if (!json_is_array(v)) return perr(c, where, "must be an array of point ids");
    size_t n = json_array_size(v);
    k->ids = qx_calloc(n ? n : 1, sizeof *k->ids);
    if (!k->ids) return perr(c, where, "out of memory");
    k->nids = n;
    for (size_t i = 0; i < n; i++) {
        char w[560], e[200];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        if (qxs_pid_from_json(json_array_get(v, i), &k->ids[i], e, sizeof e)) return perr(c, w, "%s", e);
    }
    return 0;
}

/* {"key": …} of is_empty / is_null */
static int parse_keyonly(pctx *c, const json_t *v, const char *where, qxs_cond *k, int kind) {
    k->kind = kind;
    if (!json_is_object(v)) return perr(c, where, "must be {\"key\": \"…\"}");
    const char *name;
    json_t *x;
    json_object_foreach((json_t *)v, name, x) if (strcmp(name, "key")) {
        char w[560];
        snprintf(w, sizeof w, "%s.%s", where, name);
        return perr(c, w, "unknown field (only 'key')");
    }
    return parse_key(c, v, where, k);
}

static int has_id_inside(const qxs_filter *f);

static int parse_cond(pctx *c, const json_t *j, const char *where, qxs_cond *k) {
    char w[560];
    if (!json_is_object(j)) return perr(c, where, "a condition must be an object");
    if (json_object_size(j) == 0 || json_object_get(j, "must") || json_object_get(j, "should") || json_object_get(j, "must_not") ||
        json_object_get(j, "min_should")) {
        k->kind = QXS_C_FILTER;
        return parse_filter(c, j, where, &k->sub);
    }
    json_t *v;
    if ((v = json_object_get(j, "has_id"))) {
        if (json_object_size(j) != 1) return perr(c, where, "'has_id' must be the only field of its condition");
        snprintf(w, sizeof w, "%s.has_id", where);
        return parse_has_id(c, v, w, k);
    }
    if ((v = json_object_get(j, "is_empty"))) {
        if (json_object_size(j) != 1) return perr(c, where, "'is_empty' must be the only field of its condition");
        snprintf(w, sizeof w, "%s.is_empty", where);
        return parse_keyonly(c, v, w, k, QXS_C_IS_EMPTY);
    }
    if ((v = json_object_get(j, "is_null"))) {
        if (json_object_size(j) != 1) return perr(c, where, "'is_null' must be the only field of its condition");
        snprintf(w, sizeof w, "%s.is_null", where);
        return parse_keyonly(c, v, w, k, QXS_C_IS_NULL);
    }
    if ((v = json_object_get(j, "nested"))) {
        if (json_object_size(j) != 1) return perr(c, where, "'nested' must be the only field of its condition");
        snprintf(w, sizeof w, "%s.nested", where);
        k->kind = QXS_C_NESTED;
        if (!json_is_object(v)) return perr(c, w, "must be {\"key\": …, \"filter\": {…}}");
        if (parse_key(c, v, w, k)) return -1;
        char wf[600];
        snprintf(wf, sizeof wf, "%s.filter", w);
        json_t *f = json_object_get(v, "filter");
        if (!f) return perr(c, w, "missing 'filter'");
        if (json_object_size(v) != 2) return perr(c, w, "only 'key' and 'filter' are allowed");
        if (!json_is_object(f)) return perr(c, wf, "must be an object");
        if (parse_filter(c, f, wf, &k->sub)) return -1;
        if (has_id_inside(k->sub)) return perr(c, wf, "'has_id' is not allowed inside 'nested'");
        return 0;
    }
    if (json_object_get(j, "key")) {
        if (parse_key(c, j, where, k)) return -1;
        const char *name;
        json_t *x;
        int seen = 0;
        json_object_foreach((json_t *)j, name, x) {
            snprintf(w, sizeof w, "%s.%s", where, name);
            if (!strcmp(name, "key")) continue;
            if (seen) return perr(c, w, "a field condition takes one of 'match' or 'range'");
            seen = 1;
            if (!strcmp(name, "match")) {
                if (parse_match(c, x, w, k)) return -1;
            } else if (!strcmp(name, "range")) {
                if (parse_range(c, x, w, k)) return -1;
            } else if (!strcmp(name, "geo_bounding_box") || !strcmp(name, "geo_radius") ||
                       !strcmp(name, "geo_polygon") || !strcmp(name, "values_count") || !strcmp(name, "datetime_range")) {
                return perr(c, w, "condition '%s' is not supported by qinx", name);
            } else {
                return perr(c, w, "unknown field (a field condition has 'key' and 'match' or 'range')");
            }
        }
        if (!seen) return perr(c, where, "a field condition needs 'match' or 'range'");
        return 0;
    }
    return perr(c, where, "unknown condition (field condition with 'key', 'has_id', 'is_empty', 'is_null', "
                          "'nested', or a filter with must/should/must_not/min_should)");
}

static int parse_clause(pctx *c, const json_t *v, const char *where, qxs_cond **out, size_t *nout) {
    if (json_is_null(v)) return 0;
    int one = json_is_object(v);
    if (!one && !json_is_array(v)) return perr(c, where, "must be a condition or an array of conditions");
    size_t n = one ? 1 : json_array_size(v);
    qxs_cond *k = qx_calloc(n ? n : 1, sizeof *k);
    if (!k) return perr(c, where, "out of memory");
    *out = k;
    *nout = n;
    for (size_t i = 0; i < n; i++) {
        char w[560];
        if (one) snprintf(w, sizeof w, "%s", where);
        else snprintf(w, sizeof w, "%s[%zu]", where, i);
        if (parse_cond(c, one ? v : json_array_get(v, i), w, &k[i])) return -1;
    }
    return 0;
}

static int parse_filter(pctx *c, const json_t *j, const char *where, qxs_filter **out) {
    *out = NULL;
    if (!json_is_object(j)) return perr(c, where, "a filter must be an object");
    if (++c->depth > MAX_DEPTH) return perr(c, where, "filters nest deeper than %d", MAX_DEPTH);
    qxs_filter *f = qx_calloc(1, sizeof *f);
    if (!f) return perr(c, where, "out of memory");
    *out = f;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)j, name, v) {
        char w[560];
        snprintf(w, sizeof w, "%s.%s", where, name);
        int rc;
        if (!strcmp(name, "must")) rc = parse_clause(c, v, w, &f->must, &f->nmust);
        else if (!strcmp(name, "should")) rc = parse_clause(c, v, w, &f->should, &f->nshould);
        else if (!strcmp(name, "must_not")) rc = parse_clause(c, v, w, &f->must_not, &f->nmust_not);
        else if (!strcmp(name, "min_should")) {
            if (json_is_null(v)) continue;
            if (!json_is_object(v)) return perr(c, w, "must be {\"conditions\": […], \"min_count\": N}");
            json_t *conds = json_object_get(v, "conditions"), *mc = json_object_get(v, "min_count");
            char wc[600];
            snprintf(wc, sizeof wc, "%s.min_count", w);
            if (!mc || !json_is_integer(mc) || json_integer_value(mc) < 0)
                return perr(c, wc, "must be an integer >= 0");
            const char *n2;
            json_t *x;
            json_object_foreach(v, n2, x) if (strcmp(n2, "conditions") && strcmp(n2, "min_count")) {
                snprintf(wc, sizeof wc, "%s.%s", w, n2);
                return perr(c, wc, "unknown field (conditions, min_count)");
            }
            snprintf(wc, sizeof wc, "%s.conditions", w);
            if (!json_is_array(conds)) return perr(c, wc, "must be an array of conditions");
            f->has_min_should = 1;
            f->min_count = (size_t)json_integer_value(mc);
            rc = parse_clause(c, conds, wc, &f->min_should, &f->nmin_should);
        } else return perr(c, w, "unknown clause (must, should, must_not, min_should)");
        if (rc) return -1;
    }
    c->depth--;
    return 0;
}

static int has_id_inside(const qxs_filter *f) {
    const qxs_cond *cl[4] = {f->must, f->should, f->must_not, f->min_should};
    size_t n[4] = {f->nmust, f->nshould, f->nmust_not, f->nmin_should};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < n[k]; i++) {
            if (cl[k][i].kind == QXS_C_HAS_ID) return 1;
            if (cl[k][i].sub && has_id_inside(cl[k][i].sub)) return 1;
        }
    return 0;
}

int qxs_filter_parse(const json_t *j, const char *where, qxs_filter **out, char *err, size_t errcap) {
    *out = NULL;
    if (!j || json_is_null(j)) return 0;
    pctx c = {err, errcap, 0};
    qxs_filter *f = NULL;
    if (parse_filter(&c, j, where, &f)) {
        qxs_filter_free(f);
        return -1;
    }
    f->owned = json_incref((json_t *)j);
    *out = f;
    return 0;
}

static void walk_conds(qxs_cond *v, size_t n, void (*fn)(void *, qxs_cond *), void *ctx) {
    for (size_t i = 0; i < n; i++) {
        fn(ctx, &v[i]);
        if (v[i].kind == QXS_C_FILTER) qxs_filter_walk(v[i].sub, fn, ctx);
    }
}

void qxs_filter_walk(qxs_filter *f, void (*fn)(void *ctx, qxs_cond *c), void *ctx) {
    if (!f) return;
    walk_conds(f->must, f->nmust, fn, ctx);
    walk_conds(f->should, f->nshould, fn, ctx);
    walk_conds(f->must_not, f->nmust_not, fn, ctx);
    walk_conds(f->min_should, f->nmin_should, fn, ctx);
}
