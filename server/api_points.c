/* server/api_points.c — the point endpoints: upsert (ids u64 or UUID, with
 * payloads), retrieve, delete (by ids or filter), scroll, count, payload
 * set/overwrite/delete keys/clear (by ids or filter), payload indexes, and
 * the search core shared by search and query (hits -> point objects).
 *
 * Decisions:
 * 1. Every request is validated whole before anything is written: a bad id,
 *    vector, payload, or a value that does not fit a payload index refuses
 *    the request (422; 413-sized payloads too) and nothing is applied.
 * 2. with_payload selects top-level keys (include / exclude lists).
 * 3. scroll orders by point id as Qdrant does (integers ascending, then
 *    UUIDs); each page is one pass over the collection (O(n) per page).
 * 4. count is always exact (a pass with the filter, indexes answering what
 *    they can); 'exact': false is accepted and gives the same number.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_util.h"
#include "filter_plan.h"
#include "internal.h"
#include "payload_index.h"

int qxs_api_pid(json_t *v, qxs_pid *out, qxs_reply *o, const char *what) {
    char err[200];
    if (qxs_pid_from_json(v, out, err, sizeof err)) {
        qxs_api_fail(o, 422, "%s: %s", what, err);
        return -1;
    }
    return 0;
}

int qxs_api_psel(json_t *v, int def, qxs_psel *out, qxs_reply *o) {
    out->mode = def;
    out->fields = NULL;
    if (!v || json_is_null(v)) return 0;
    if (json_is_boolean(v)) {
        out->mode = json_is_true(v);
        return 0;
    }
    json_t *list = v;
    out->mode = 2;
    if (json_is_object(v)) {
        json_t *inc = json_object_get(v, "include"), *exc = json_object_get(v, "exclude");
        if ((inc != NULL) == (exc != NULL) || json_object_size(v) != 1) {
            qxs_api_fail(o, 422, "'with_payload' as an object must be {\"include\": [...]} or {\"exclude\": [...]}");
            return -1;
        }
        list = inc ? inc : exc;
        out->mode = inc ? 2 : 3;
    }
    if (!json_is_array(list)) {
        qxs_api_fail(o, 422, "'with_payload' must be a boolean, a list of fields, or {\"include\"|\"exclude\": [...]}");
        return -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) if (!json_is_string(e)) {
        qxs_api_fail(o, 422, "'with_payload' fields must be strings (field %zu is not)", i);
        return -1;
    }
    out->fields = json_incref(list);
    return 0;
}

static int listed(const json_t *fields, const char *k) {
    size_t i;
    json_t *e;
    json_array_foreach(fields, i, e) if (!strcmp(json_string_value(e), k)) return 1;
    return 0;
}

json_t *qxs_api_point(const qxs_coll *c, int64_t key, const qxs_psel *ps, int wv, const double *score) {
    const float *v = qxs_store_get(&c->store, key);
    if (!v) return NULL;
    qxs_pid pid = qxs_pmeta_pid(&c->pm, key);
    json_t *p = json_object();
    if (!p) return NULL;
    json_object_set_new(p, "id", qxs_pid_to_json(&pid));
    if (score) json_object_set_new(p, "score", json_real(*score));
    if (ps && ps->mode) {
        json_t *pl = qxs_payload_load((void *)c, key); /* a point without payload has no "payload" */
        if (ps->mode >= 2 && pl) {
            json_t *sel = json_object();
            const char *k;
            json_t *x;
            json_object_foreach(pl, k, x) if (listed(ps->fields, k) == (ps->mode == 2)) json_object_set(sel, k, x);
            json_decref(pl);
            pl = sel;
        }
        if (pl) json_object_set_new(p, "payload", pl);
    }
    if (wv) json_object_set_new(p, "vector", qxs_api_vector_json(v, c->d));
    return p;
}

int qxs_api_filter(json_t *b, const char *key, qxs_filter **f, qxs_reply *o) {
    char err[512];
    *f = NULL;
    if (qxs_filter_parse(json_object_get(b, key), key, f, err, sizeof err)) {
        qxs_api_fail(o, 422, "%s", err);
        return -1;
    }
    return 0;
}

json_t *qxs_api_run_search(qxs_server *s, qxs_coll *c, const float *q, const qxs_search_opts *so, int wv,
                           const qxs_psel *ps, size_t offset, const double *thr, qxs_reply *o, const char *what) {
    float *dist = qx__malloc(so->k * sizeof *dist);
    int64_t *ids = qx__malloc(so->k * sizeof *ids);
    json_t *res = NULL;
    if (!dist || !ids) {
        qxs_api_fail(o, 500, "out of memory");
        goto out;
    }
    size_t found = 0;
    int used = 0;
    int rc = qxs_coll_search(c, q, so, dist, ids, &found, &used);
    if (rc) {
        qxs_api_fail(o, qxs_api_status(rc), "search failed: %s", qx_last_error());
        goto out;
    }
    atomic_fetch_add(&s->m.searches, 1);
    res = json_array();
    int higher_better = c->distance != QXS_EUCLID;
    pthread_rwlock_rdlock(&c->rw);
    for (size_t i = offset; res && i < found; i++) {
        double sc = qxs_api_score(c->distance, dist[i]);
        if (!isfinite(dist[i]) || !isfinite(sc)) {
            qxs_api_fail(o, 500, "%s: non-finite score for a point", what);
            json_decref(res);
            res = NULL;
            break;
        }
        if (thr && (higher_better ? sc < *thr : sc > *thr)) break;
        json_t *p = qxs_api_point(c, ids[i], ps, wv, &sc);
        if (p && json_array_append_new(res, p)) {
            json_decref(res);
            res = NULL;
        }
    }
    pthread_rwlock_unlock(&c->rw);
    if (!res && o->status == 0) qxs_api_fail(o, 500, "out of memory");
out:
    qx__free(dist);
    qx__free(ids);
    return res;
}

/* ---- upsert ----------------------------------------------------------------- */

typedef struct pidpos {
    qxs_pid pid;
    size_t pos;
} pidpos;

static int cmp_pidpos(const void *a, const void *b) {
    const pidpos *x = a, *y = b;
    int c = qxs_pid_cmp(&x->pid, &y->pid);
    if (c) return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void qxs_api_upsert(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) {
    json_t *pts = json_object_get(b, "points"), *batch = json_object_get(b, "batch");
    json_t *bids = NULL, *bvecs = NULL, *bpl = NULL;
    size_t n;
    if (pts) {
        if (!json_is_array(pts)) {
            qxs_api_fail(o, 422, "'points' must be an array of {\"id\": …, \"vector\": […], \"payload\": {…}}");
            return;
        }
        n = json_array_size(pts);
    } else if (batch) {
        bids = json_is_object(batch) ? json_object_get(batch, "ids") : NULL;
        bvecs = json_is_object(batch) ? json_object_get(batch, "vectors") : NULL;
        bpl = json_is_object(batch) ? json_object_get(batch, "payloads") : NULL;
        if (!json_is_array(bids) || !json_is_array(bvecs) || json_array_size(bids) != json_array_size(bvecs) ||
            (bpl && !json_is_null(bpl) && (!json_is_array(bpl) || json_array_size(bpl) != json_array_size(bids)))) {
            qxs_api_fail(o, 422, "'batch' must be {\"ids\": [...], \"vectors\": [[...], ...], \"payloads\": [...]} of "
                                 "equal lengths");
            return;
        }
        n = json_array_size(bids);
    } else {
        qxs_api_fail(o, 422, "missing field 'points'");
        return;
    }
    if (n == 0) {
        qxs_api_fail(o, 422, "'points' is empty");
        return;
    }
    if (n > QXS_MAX_BATCH) {
        qxs_api_fail(o, 422, "%zu points in one request; at most %d", n, QXS_MAX_BATCH);
        return;
    }
    size_t vb;
    if (!qx__mul3(n, c->d, sizeof(float), &vb)) {
        qxs_api_fail(o, 422, "batch too large");
        return;
    }
    float *x = qx__aligned_alloc(vb);
    qxs_point_in *in = qx__calloc(n, sizeof *in);
    pidpos *ip = qx__malloc(n * sizeof *ip);
    char **txt = qx__calloc(n, sizeof *txt);
    if (!x || !in || !ip || !txt) {
        qxs_api_fail(o, 500, "out of memory for %zu points", n);
        goto out;
    }
    char what[48];
    for (size_t i = 0; i < n; i++) {
        json_t *idv, *vv, *pl = NULL;
        snprintf(what, sizeof what, "point %zu", i);
        if (pts) {
            json_t *p = json_array_get(pts, i);
            if (!json_is_object(p)) {
                qxs_api_fail(o, 422, "%s: must be an object {\"id\": …, \"vector\": […]}", what);
                goto out;
            }
            idv = json_object_get(p, "id");
            vv = json_object_get(p, "vector");
            pl = json_object_get(p, "payload");
            if (!idv || !vv) {
                qxs_api_fail(o, 422, "%s: missing field '%s'", what, idv ? "vector" : "id");
                goto out;
            }
        } else {
            idv = json_array_get(bids, i);
            vv = json_array_get(bvecs, i);
            if (bpl && !json_is_null(bpl)) pl = json_array_get(bpl, i);
        }
        if (json_is_object(vv) && json_object_size(vv) == 1 && json_object_get(vv, ""))
            vv = json_object_get(vv, ""); /* the unnamed vector as a named map */
        if (qxs_api_pid(idv, &in[i].pid, o, what) || qxs_api_vector(vv, c, x + i * c->d, o, what)) goto out;
        if (pl && !json_is_null(pl)) {
            if (!json_is_object(pl)) {
                qxs_api_fail(o, 422, "%s: 'payload' must be a JSON object", what);
                goto out;
            }
            if (json_object_size(pl)) {
                txt[i] = json_dumps(pl, JSON_COMPACT);
                if (!txt[i]) {
                    qxs_api_fail(o, 500, "out of memory");
                    goto out;
                }
                size_t len = strlen(txt[i]);
                if (len > QXS_MAX_PAYLOAD) {
                    qxs_api_fail(o, 413, "%s: payload of %zu bytes above the limit of %u bytes", what, len,
                                 QXS_MAX_PAYLOAD);
                    goto out;
                }
                in[i].payload = txt[i];
                in[i].len = (uint32_t)len;
                in[i].pj = pl;
            }
        }
        ip[i] = (pidpos){in[i].pid, i};
    }
    /* the last occurrence of an id wins */
    qsort(ip, n, sizeof *ip, cmp_pidpos);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || !qxs_pid_eq(&ip[i + 1].pid, &ip[i].pid)) ip[m++] = ip[i];
    if (m < n) {
        char *keep = qx__calloc(n, 1);
        if (!keep) {
            qxs_api_fail(o, 500, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m; i++) keep[ip[i].pos] = 1;
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (keep[i]) {
                in[w] = in[i];
                if (w != i) memmove(x + w * c->d, x + i * c->d, c->d * sizeof(float));
                w++;
            }
        qx__free(keep);
        n = m;
    }
    uint64_t lsn;
    int rc = qxs_coll_upsert(s, c, in, x, n, &lsn);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "upsert failed: %s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)lsn, "status", "completed"));
out:
    for (size_t i = 0; txt && i < (pts ? json_array_size(pts) : json_array_size(bids)); i++) qx__free(txt[i]);
    qx__free(txt);
    qx__aligned_free(x);
    qx__free(in);
    qx__free(ip);
}

/* ---- selecting points: ids or filter ------------------------------------------ */

/* Keys of the ids in arr (absent ids skipped, or 404 when must_exist). */
static int64_t *keys_of_ids(qxs_coll *c, json_t *arr, const char *key, int must_exist, size_t *n, qxs_reply *o) {
    if (!json_is_array(arr)) {
        qxs_api_fail(o, 422, "'%s' must be a list of point ids", key);
        return NULL;
    }
    size_t m = json_array_size(arr);
    if (m > QXS_MAX_BATCH) {
        qxs_api_fail(o, 422, "%zu ids in one request; at most %d", m, QXS_MAX_BATCH);
        return NULL;
    }
    qxs_pid *pids = qx__malloc((m + 1) * sizeof *pids);
    int64_t *keys = qx__malloc((m + 1) * sizeof *keys);
    if (!pids || !keys) {
        qx__free(pids), qx__free(keys);
        qxs_api_fail(o, 500, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < m; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s[%zu]", key, i);
        if (qxs_api_pid(json_array_get(arr, i), &pids[i], o, what)) {
            qx__free(pids), qx__free(keys);
            return NULL;
        }
    }
    size_t k = 0;
    pthread_rwlock_rdlock(&c->rw);
    for (size_t i = 0; i < m; i++) {
        int64_t key2 = qxs_pmeta_key(&c->pm, &pids[i]);
        if (key2 >= 0 && qxs_store_get(&c->store, key2)) keys[k++] = key2;
        else if (must_exist) {
            char t[QXS_PID_TEXT_MAX];
            qxs_pid_format(&pids[i], t);
            qxs_api_fail(o, 404, "no point with id %s in collection '%s'", t, c->name);
            k = (size_t)-1;
            break;
        }
    }
    pthread_rwlock_unlock(&c->rw);
    qx__free(pids);
    if (k == (size_t)-1) {
        qx__free(keys);
        return NULL;
    }
    *n = k;
    return keys;
}

/* Keys of every point passing f (sorted by key). */
static int64_t *keys_of_filter(qxs_coll *c, qxs_filter *f, size_t *n, qxs_reply *o) {
    pthread_rwlock_rdlock(&c->rw);
    qxs_filter_bind(c, f);
    int64_t *keys = qx__malloc((c->store.n + 1) * sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; keys && i < c->store.n; i++)
        if (qxs_filter_passes(c, f, c->store.ids[i])) keys[k++] = c->store.ids[i];
    pthread_rwlock_unlock(&c->rw);
    if (!keys) qxs_api_fail(o, 500, "out of memory");
    *n = k;
    return keys;
}

/* "points" (ids) or "filter" of a body (Qdrant's points selector). */
static int64_t *select_points(qxs_coll *c, json_t *b, int must_exist, size_t *n, qxs_reply *o) {
    json_t *pts = json_object_get(b, "points"), *fj = json_object_get(b, "filter");
    if (json_is_object(pts) && json_object_get(pts, "filter")) fj = json_object_get(pts, "filter"), pts = NULL;
    if (pts && !json_is_null(pts)) return keys_of_ids(c, pts, "points", must_exist, n, o);
    if (!fj || json_is_null(fj)) {
        qxs_api_fail(o, 422, "give 'points' (a list of ids) or 'filter'");
        return NULL;
    }
    qxs_filter *f;
    if (qxs_api_filter(pts ? b : (json_object_get(b, "filter") == fj ? b : json_object_get(b, "points")), "filter", &f, o))
        return NULL;
    int64_t *k = keys_of_filter(c, f, n, o);
    qxs_filter_free(f);
    return k;
}

void qxs_api_delete(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) {
    size_t n = 0;
    int64_t *keys = select_points(c, b, 0, &n, o);
    if (!keys) return;
    uint64_t lsn = 0;
    size_t removed = 0;
    int rc = n ? qxs_coll_delete(s, c, keys, n, &lsn, &removed) : 0;
    qx__free(keys);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "delete failed: %s", qx_last_error());
    else
        qxs_api_ok(o, json_pack("{s:I, s:s, s:I}", "operation_id", (json_int_t)lsn, "status", "completed", "deleted",
                                (json_int_t)removed));
}

void qxs_api_get_point(qxs_coll *c, const qxs_pid *pid, qxs_reply *o) {
    qxs_psel all = {1, NULL};
    pthread_rwlock_rdlock(&c->rw);
    int64_t key = qxs_pmeta_key(&c->pm, pid);
    json_t *p = key >= 0 ? qxs_api_point(c, key, &all, 1, NULL) : NULL;
    pthread_rwlock_unlock(&c->rw);
    char t[QXS_PID_TEXT_MAX];
    qxs_pid_format(pid, t);
    if (!p) qxs_api_fail(o, 404, "point %s not found in collection '%s'", t, c->name);
    else qxs_api_ok(o, p);
}

void qxs_api_retrieve(qxs_coll *c, json_t *b, qxs_reply *o) {
    int wv;
    qxs_psel ps;
    if (qxs_api_bool(b, "with_vector", 1, &wv, o) || qxs_api_psel(json_object_get(b, "with_payload"), 1, &ps, o))
        return;
    size_t n, asked = json_array_size(json_object_get(b, "ids"));
    int64_t *keys = keys_of_ids(c, json_object_get(b, "ids"), "ids", 0, &n, o);
    if (!keys) {
        json_decref(ps.fields);
        return;
    }
    if (asked * (1 + (wv ? c->d : 0)) > QXS_MAX_REPLY_VALUES) { /* asked <= 65536, d <= 65536 */
        qxs_api_fail(o, 422, "the reply would hold more than %d numbers (ids x (1 + dimension with with_vector)): "
                             "ask for fewer ids or drop 'with_vector'", QXS_MAX_REPLY_VALUES);
    } else {
        json_t *arr = json_array();
        pthread_rwlock_rdlock(&c->rw);
        for (size_t i = 0; arr && i < n; i++) {
            json_t *p = qxs_api_point(c, keys[i], &ps, wv, NULL);
            if (p) json_array_append_new(arr, p);
        }
        pthread_rwlock_unlock(&c->rw);
        qxs_api_ok(o, arr);
    }
    json_decref(ps.fields);
    qx__free(keys);
}

/* ---- scroll and count ------------------------------------------------------------- */

typedef struct pk {
    qxs_pid pid;
    int64_t key;
} pk;

static int cmp_pk(const void *a, const void *b) { return qxs_pid_cmp(&((const pk *)a)->pid, &((const pk *)b)->pid); }

void qxs_api_scroll(qxs_coll *c, json_t *b, qxs_reply *o) {
    long long limit;
    int wv;
    qxs_psel ps;
    if (qxs_api_int(b, "limit", 1, QX_MAX_K, 10, &limit, o) || qxs_api_bool(b, "with_vector", 0, &wv, o)) return;
    if (json_object_get(b, "order_by") && !json_is_null(json_object_get(b, "order_by"))) {
        qxs_api_fail(o, 422, "'order_by' is not supported (scroll orders by point id)");
        return;
    }
    qxs_pid from = {0, 0, 0};
    int has_from = 0;
    json_t *off = json_object_get(b, "offset");
    if (off && !json_is_null(off)) {
        if (qxs_api_pid(off, &from, o, "offset")) return;
        has_from = 1;
    }
    qxs_filter *f;
    if (qxs_api_filter(b, "filter", &f, o)) return;
    if (qxs_api_psel(json_object_get(b, "with_payload"), 1, &ps, o)) {
        qxs_filter_free(f);
        return;
    }
    pthread_rwlock_rdlock(&c->rw);
    if (f) qxs_filter_bind(c, f);
    size_t n = c->store.n, m = 0;
    pk *v = qx__malloc((n + 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        int64_t key = c->store.ids[i];
        qxs_pid pid = qxs_pmeta_pid(&c->pm, key);
        if (has_from && qxs_pid_cmp(&pid, &from) < 0) continue;
        if (!qxs_filter_passes(c, f, key)) continue;
        v[m++] = (pk){pid, key};
    }
    json_t *arr = json_array(), *next = json_null();
    if (v) {
        /* the limit + 1 smallest ids: sort (pages are small next to n) */
        qsort(v, m, sizeof *v, cmp_pk);
        for (size_t i = 0; arr && i < m && i < (size_t)limit; i++)
            json_array_append_new(arr, qxs_api_point(c, v[i].key, &ps, wv, NULL));
        if (m > (size_t)limit) {
            json_decref(next);
            next = qxs_pid_to_json(&v[limit].pid);
        }
    }
    pthread_rwlock_unlock(&c->rw);
    qx__free(v);
    qxs_filter_free(f);
    json_decref(ps.fields);
    if (!v || !arr) {
        json_decref(arr);
        json_decref(next);
        qxs_api_fail(o, 500, "out of memory");
        return;
    }
    qxs_api_ok(o, json_pack("{s:o, s:o}", "points", arr, "next_page_offset", next));
}

void qxs_api_count(qxs_coll *c, json_t *b, qxs_reply *o) {
    int exact;
    if (qxs_api_bool(b, "exact", 1, &exact, o)) return;
    qxs_filter *f;
    if (qxs_api_filter(b, "filter", &f, o)) return;
    size_t cnt = 0;
    pthread_rwlock_rdlock(&c->rw);
    if (!f) cnt = c->store.n;
    else {
        qxs_filter_bind(c, f);
        for (size_t i = 0; i < c->store.n; i++) cnt += (size_t)qxs_filter_passes(c, f, c->store.ids[i]);
    }
    pthread_rwlock_unlock(&c->rw);
    qxs_filter_free(f);
    qxs_api_ok(o, json_pack("{s:I}", "count", (json_int_t)cnt));
}

/* ---- payload operations ------------------------------------------------------------ */

void qxs_api_payload(qxs_server *s, qxs_coll *c, json_t *b, int mode, qxs_reply *o) {
    json_t *pl = json_object_get(b, "payload"), *keysj = json_object_get(b, "keys");
    if ((mode == 's' || mode == 'o') && !json_is_object(pl)) {
        qxs_api_fail(o, 422, "'payload' must be a JSON object");
        return;
    }
    if (mode == 'd') {
        size_t i;
        json_t *e;
        if (!json_is_array(keysj)) {
            qxs_api_fail(o, 422, "'keys' must be a list of payload keys");
            return;
        }
        json_array_foreach(keysj, i, e) if (!json_is_string(e)) {
            qxs_api_fail(o, 422, "keys[%zu] must be a string", i);
            return;
        }
    }
    if (json_object_get(b, "key") && !json_is_null(json_object_get(b, "key"))) {
        qxs_api_fail(o, 422, "'key' (setting a nested path) is not supported: set the top-level key");
        return;
    }
    size_t n = 0;
    int64_t *keys = select_points(c, b, 1, &n, o);
    if (!keys) return;
    json_t **np = qx__calloc(n ? n : 1, sizeof *np);
    if (!np) {
        qx__free(keys);
        qxs_api_fail(o, 500, "out of memory");
        return;
    }
    /* the new payloads, computed from the current ones */
    pthread_rwlock_rdlock(&c->rw);
    for (size_t i = 0; i < n; i++) {
        json_t *cur = mode == 's' || mode == 'd' ? qxs_payload_load(c, keys[i]) : NULL;
        if (!cur) cur = json_object();
        if (mode == 's') json_object_update(cur, pl);
        else if (mode == 'o') json_object_update(cur, pl);
        else if (mode == 'd') {
            size_t j;
            json_t *e;
            json_array_foreach(keysj, j, e) json_object_del(cur, json_string_value(e));
        }
        np[i] = cur;
    }
    pthread_rwlock_unlock(&c->rw);
    uint64_t lsn = 0;
    int rc = qxs_coll_set_payloads(s, c, keys, np, n, &lsn);
    if (rc == QX_ELIMIT) qxs_api_fail(o, 413, "%s", qx_last_error());
    else if (rc) qxs_api_fail(o, qxs_api_status(rc), "payload update failed: %s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)lsn, "status", "completed"));
    for (size_t i = 0; i < n; i++) json_decref(np[i]);
    qx__free(np);
    qx__free(keys);
}

/* ---- payload indexes ------------------------------------------------------------------ */

void qxs_api_index_create(qxs_coll *c, json_t *b, qxs_reply *o) {
    json_t *fn = json_object_get(b, "field_name"), *sc = json_object_get(b, "field_schema");
    if (!json_is_string(fn) || !json_string_length(fn)) {
        qxs_api_fail(o, 422, "missing or non-string 'field_name'");
        return;
    }
    if (json_is_object(sc)) sc = json_object_get(sc, "type");
    int type = json_is_string(sc) ? qxs_pindex_type_parse(json_string_value(sc)) : 0;
    if (!type) {
        qxs_api_fail(o, 422, "'field_schema' must be one of keyword, integer, float, bool, uuid (text, geo and "
                             "datetime indexes are not supported)");
        return;
    }
    int rc = qxs_coll_index_create(c, json_string_value(fn), type);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)0, "status", "completed"));
}

void qxs_api_index_drop(qxs_coll *c, const char *field, qxs_reply *o) {
    int rc = qxs_coll_index_drop(c, field);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)0, "status", "completed"));
}
