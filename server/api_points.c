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
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "payload_index.h"
#include "payload_indexes.h"
#include "upsert_body.h"

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

json_t *qxs_api_point(const qxs_coll *c, const qxs_pid *id, const float *vec, const uint8_t *payload, uint32_t plen,
                      const qxs_psel *ps, const double *score) {
    json_t *p = json_object();
    if (!p) return NULL;
    json_object_set_new(p, "id", qxs_pid_to_json(id));
    if (score) json_object_set_new(p, "score", json_real(*score));
    if (ps && ps->mode && plen) { /* a point without payload has no "payload" */
        json_t *pl = json_loadb((const char *)payload, plen, 0, NULL);
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
    if (vec) json_object_set_new(p, "vector", qxs_api_vector_json(vec, c->d));
    return p;
}

/* The point with row key rowkey as JSON (NULL if it is gone). */
static json_t *point_by_key(qxs_coll *c, int64_t rowkey, const qxs_psel *ps, int wv, const double *score) {
    float *vec = wv ? qx_malloc(c->d * sizeof *vec) : NULL;
    uint8_t *pl = NULL;
    uint32_t plen = 0;
    qxs_pid id;
    json_t *p = NULL;
    if ((!wv || vec) && !qxs_coll_get_key(c, rowkey, &id, vec, ps && ps->mode ? &pl : NULL, &plen))
        p = qxs_api_point(c, &id, vec, pl, plen, ps, score);
    qx_free(vec);
    qx_free(pl);
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

json_t *qxs_api_run_search(qxs_server *s, qxs_coll *c, const float *q, const qxs_search_opts *so_in, qxs_filter *f,
                           int wv, const qxs_psel *ps, size_t offset, const double *thr, qxs_reply *o,
                           const char *what) {
    qxs_search_opts so = *so_in;
    float *dist = qx_malloc(so.k * sizeof *dist);
    qxs_pid *ids = qx_malloc(so.k * sizeof *ids);
    int64_t *keys = qx_malloc(so.k * sizeof *keys), *cand = NULL;
    json_t *res = NULL;
    qxs_pidxset *px = NULL;
    if (!dist || !ids || !keys) {
        qxs_api_fail(o, 500, "out of memory");
        goto out;
    }
    size_t found = 0;
    int used = 0, rc = 0;
    qxs_fsearch fctx;
    if (f) {
        if (!(px = qxs_pidx_get(c))) {
            qxs_api_fail(o, 500, "payload indexes: %s", qx_last_error());
            goto out;
        }
        qxs_pidx_rdlock(px); /* bound indexes stay alive until the search is done */
        qxs_pidx_bind(px, f);
        long long est;
        rc = qxs_filter_plan(c, f, &fctx, &so, &cand, &est);
    }
    size_t tested = 0, passed = 0;
    if (f && !so.only_keys) so.filter_tested = &tested, so.filter_passed = &passed;
    if (!rc) rc = qxs_coll_search(c, q, &so, dist, ids, keys, &found, &used);
    if (!rc && f && used && tested) { /* a correlated filter: search the listed points instead */
        int r = qxs_filter_replan(c, f, &fctx, &so, &cand, tested, passed);
        if (r == 1) rc = qxs_coll_search(c, q, &so, dist, ids, keys, &found, &used);
        else if (r < 0) rc = r;
    }
    if (px) qxs_pidx_unlock(px);
    if (rc) {
        qxs_api_fail(o, qxs_api_status(rc), "search failed: %s", qx_last_error());
        goto out;
    }
    atomic_fetch_add(&s->m.searches, 1);
    res = json_array();
    int higher_better = c->distance != QXS_EUCLID;
    for (size_t i = offset; res && i < found; i++) {
        double sc = qxs_api_score(c->distance, dist[i]);
        if (!isfinite(dist[i]) || !isfinite(sc)) {
            qxs_api_fail(o, 500, "%s: non-finite score for a point", what);
            json_decref(res);
            res = NULL;
            break;
        }
        if (thr && (higher_better ? sc < *thr : sc > *thr)) break;
        json_t *p = (ps && ps->mode) || wv ? point_by_key(c, keys[i], ps, wv, &sc) : qxs_api_point(c, &ids[i], NULL, NULL, 0, NULL, &sc);
        if (p && json_array_append_new(res, p)) {
            json_decref(res);
            res = NULL;
        }
    }
    if (!res && o->status == 0) qxs_api_fail(o, 500, "out of memory");
out:
    qx_free(dist);
    qx_free(ids);
    qx_free(keys);
    qx_free(cand);
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

/* Payload JSON -> compact bytes (413 above the limit). 0 or -1 (o filled). */
static int payload_bytes(json_t *pl, char **txt, qxs_bytes *out, qxs_reply *o, const char *what) {
    *txt = NULL;
    out->data = NULL;
    out->len = 0;
    if (!pl || json_is_null(pl)) return 0;
    if (!json_is_object(pl)) {
        qxs_api_fail(o, 422, "%s: 'payload' must be a JSON object", what);
        return -1;
    }
    if (!json_object_size(pl)) return 0;
    if (!(*txt = json_dumps(pl, JSON_COMPACT))) {
        qxs_api_fail(o, 500, "out of memory");
        return -1;
    }
    size_t len = strlen(*txt);
    if (len > QXS_MAX_PAYLOAD) {
        qxs_api_fail(o, 413, "%s: payload of %zu bytes above the limit of %d bytes", what, len, QXS_MAX_PAYLOAD);
        return -1;
    }
    out->data = (const uint8_t *)*txt;
    out->len = (uint32_t)len;
    return 0;
}

static int write_status(int rc) { return rc == QXS_EMEMLIMIT ? 507 : rc == QX_ELIMIT ? 413 : qxs_api_status(rc); }

/* The write shared by both upsert parsers, for n validated points (pl: their
 * payload texts, pj: their payload JSON, NULL where none): the last
 * occurrence of an id wins, payload values are checked against the payload
 * indexes, then one log record and one apply. The arrays are compacted in
 * place. */
static void upsert_write(qxs_server *s, qxs_coll *c, qxs_pid *pids, float *x, qxs_bytes *pl, json_t **pj, size_t n,
                         qxs_reply *o) {
    pidpos *ip = qx_malloc(n * sizeof *ip);
    qxs_pidxset *px = NULL;
    if (!ip) {
        qxs_api_fail(o, 500, "out of memory for %zu points", n);
        return;
    }
    for (size_t i = 0; i < n; i++) ip[i] = (pidpos){pids[i], i};
    qsort(ip, n, sizeof *ip, cmp_pidpos);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || !qxs_pid_eq(&ip[i + 1].pid, &ip[i].pid)) ip[m++] = ip[i];
    if (m < n) {
        char *keep = qx_calloc(n, 1);
        if (!keep) {
            qxs_api_fail(o, 500, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < m; i++) keep[ip[i].pos] = 1;
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (keep[i]) {
                pids[w] = pids[i], pl[w] = pl[i], pj[w] = pj[i];
                if (w != i) memmove(x + w * c->d, x + i * c->d, c->d * sizeof(float));
                w++;
            }
        qx_free(keep);
        n = m;
    }
    if (!(px = qxs_pidx_get(c))) {
        qxs_api_fail(o, 500, "payload indexes: %s", qx_last_error());
        goto out;
    }
    /* the index set cannot change between this check and the write */
    qxs_pidx_rdlock(px);
    char err[300];
    for (size_t i = 0; i < n; i++)
        if (pj[i] && qxs_pidx_check(px, pj[i], err, sizeof err)) {
            char t[QXS_PID_STRLEN];
            qxs_api_fail(o, 422, "point %s: %s", qxs_pid_format(&pids[i], t), err);
            qxs_pidx_unlock(px);
            goto out;
        }
    uint64_t lsn;
    int rc = qxs_coll_upsert(s, c, pids, x, pl, n, &lsn);
    qxs_pidx_unlock(px);
    if (rc) qxs_api_fail(o, write_status(rc), "upsert failed: %s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)lsn, "status", "completed"));
out:
    qx_free(ip);
}

/* Payload texts (txt[i], pl[i]) and JSON (pj[i]) of n points, allocated
 * together; 0 or -1 (o filled). */
typedef struct upsert_pl {
    qxs_bytes *pl;
    json_t **pj;
    char **txt;
    size_t n;
} upsert_pl;

static int upsert_pl_new(upsert_pl *u, size_t n, qxs_reply *o) {
    u->n = n;
    u->pl = qx_calloc(n, sizeof *u->pl);
    u->pj = qx_calloc(n, sizeof *u->pj);
    u->txt = qx_calloc(n, sizeof *u->txt);
    if (u->pl && u->pj && u->txt) return 0;
    qxs_api_fail(o, 500, "out of memory for %zu points", n);
    return -1;
}

static void upsert_pl_free(upsert_pl *u) {
    for (size_t i = 0; u->txt && i < u->n; i++) qx_free(u->txt[i]);
    qx_free(u->txt);
    qx_free(u->pl);
    qx_free(u->pj);
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
    if (!qx_size_mul3(n, c->d, sizeof(float), &vb)) {
        qxs_api_fail(o, 422, "batch too large");
        return;
    }
    float *x = qx_aligned_alloc(vb);
    qxs_pid *pids = qx_malloc(n * sizeof *pids);
    upsert_pl u = {0};
    if (!x || !pids) {
        qxs_api_fail(o, 500, "out of memory for %zu points", n);
        goto out;
    }
    if (upsert_pl_new(&u, n, o)) goto out;
    char what[48];
    for (size_t i = 0; i < n; i++) {
        json_t *idv, *vv, *plj = NULL;
        snprintf(what, sizeof what, "point %zu", i);
        if (pts) {
            json_t *p = json_array_get(pts, i);
            if (!json_is_object(p)) {
                qxs_api_fail(o, 422, "%s: must be an object {\"id\": …, \"vector\": […]}", what);
                goto out;
            }
            idv = json_object_get(p, "id");
            vv = json_object_get(p, "vector");
            plj = json_object_get(p, "payload");
            if (!idv || !vv) {
                qxs_api_fail(o, 422, "%s: missing field '%s'", what, idv ? "vector" : "id");
                goto out;
            }
        } else {
            idv = json_array_get(bids, i);
            vv = json_array_get(bvecs, i);
            if (bpl && !json_is_null(bpl)) plj = json_array_get(bpl, i);
        }
        if (json_is_object(vv) && json_object_size(vv) == 1 && json_object_get(vv, ""))
            vv = json_object_get(vv, ""); /* the unnamed vector as a named map */
        if (qxs_api_pid(idv, &pids[i], o, what) || qxs_api_vector(vv, c, x + i * c->d, o, what) ||
            payload_bytes(plj, &u.txt[i], &u.pl[i], o, what))
            goto out;
        u.pj[i] = u.pl[i].len ? plj : NULL;
    }
    upsert_write(s, c, pids, x, u.pl, u.pj, n, o);
out:
    upsert_pl_free(&u);
    qx_aligned_free(x);
    qx_free(pids);
}

/* The hot path of PUT .../points: a body of the common shapes is read by
 * qxs_upsert_body_parse without a JSON tree for ids and vectors
 * (upsert_body.c). Each point then goes through the checks the jansson path
 * ends with for it (vector checks and Cosine normalisation, payload text),
 * in the same order, so the first failing point gives the same reply. 1
 * when handled here (reply in o); 0 when the parser declined the body, which
 * then takes the jansson path. */
int qxs_api_upsert_fast(qxs_server *s, qxs_coll *c, const char *body, size_t len, qxs_reply *o) {
    qxs_upsert_body ub;
    if (!qxs_upsert_body_parse(body, len, c->d, QXS_MAX_BATCH, &ub)) return 0;
    upsert_pl u = {0};
    if (upsert_pl_new(&u, ub.n, o)) goto out;
    char what[48];
    for (size_t i = 0; i < ub.n; i++) {
        snprintf(what, sizeof what, "point %zu", i);
        if (qxs_api_finish_vector(c, ub.x + i * c->d, o, what) ||
            payload_bytes(ub.payload[i], &u.txt[i], &u.pl[i], o, what))
            goto out;
        u.pj[i] = u.pl[i].len ? ub.payload[i] : NULL;
    }
    upsert_write(s, c, ub.ids, ub.x, u.pl, u.pj, ub.n, o);
out:
    upsert_pl_free(&u);
    qxs_upsert_body_free(&ub);
    return 1;
}

/* ---- selecting points: ids or filter ------------------------------------------ */

static qxs_pid *parse_pids(json_t *arr, const char *key, size_t *n, qxs_reply *o) {
    if (!json_is_array(arr)) {
        qxs_api_fail(o, 422, "'%s' must be a list of point ids", key);
        return NULL;
    }
    size_t m = json_array_size(arr);
    if (m > QXS_MAX_BATCH) {
        qxs_api_fail(o, 422, "%zu ids in one request; at most %d", m, QXS_MAX_BATCH);
        return NULL;
    }
    qxs_pid *pids = qx_malloc((m + 1) * sizeof *pids);
    if (!pids) {
        qxs_api_fail(o, 500, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < m; i++) {
        char what[48];
        snprintf(what, sizeof what, "%s[%zu]", key, i);
        if (qxs_api_pid(json_array_get(arr, i), &pids[i], o, what)) {
            qx_free(pids);
            return NULL;
        }
    }
    *n = m;
    return pids;
}

typedef struct sel_ctx {
    qxs_coll *c;
    qxs_filter *f;
    qxs_pid *ids;
    int64_t *keys;
    size_t n, cap;
    int oom;
    int has_from;
    qxs_pid from;
} sel_ctx;

static int sel_one(void *ctx, const qxs_pid *id, int64_t rowkey, const uint8_t *payload, uint32_t plen) {
    sel_ctx *s = ctx;
    if (s->has_from && qxs_pid_cmp(id, &s->from) < 0) return 0;
    if (!qxs_filter_test(s->c, s->f, id, rowkey, payload, plen, 0)) return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        qxs_pid *v = qx_realloc(s->ids, cap * sizeof *v);
        if (v) s->ids = v;
        int64_t *k = v ? qx_realloc(s->keys, cap * sizeof *k) : NULL;
        if (k) s->keys = k;
        if (!v || !k) return s->oom = 1;
        s->cap = cap;
    }
    s->ids[s->n] = *id;
    s->keys[s->n++] = rowkey;
    return 0;
}

/* Every point passing f (ids and row keys, in store order); 0 or -1 (o filled). */
static int select_filter(qxs_coll *c, qxs_filter *f, sel_ctx *sc, qxs_reply *o) {
    memset(sc, 0, sizeof *sc);
    sc->c = c;
    sc->f = f;
    qxs_pidxset *px = qxs_pidx_get(c);
    if (!px) {
        qxs_api_fail(o, 500, "payload indexes: %s", qx_last_error());
        return -1;
    }
    qxs_pidx_rdlock(px);
    if (f) qxs_pidx_bind(px, f);
    return 0;
}

static int select_run(qxs_coll *c, sel_ctx *sc, qxs_reply *o) {
    qxs_coll_foreach(c, sel_one, sc);
    qxs_pidx_unlock(c->pidxs);
    if (sc->oom) {
        qx_free(sc->ids), qx_free(sc->keys);
        qxs_api_fail(o, 500, "out of memory");
        return -1;
    }
    return 0;
}

/* "points" (ids) or "filter" of a body (Qdrant's points selector): ids (qx_free). */
static qxs_pid *select_points(qxs_coll *c, json_t *b, size_t *n, qxs_reply *o) {
    json_t *pts = json_object_get(b, "points"), *holder = b;
    if (json_is_object(pts) && json_object_get(pts, "filter")) holder = pts, pts = NULL;
    if (pts && !json_is_null(pts)) return parse_pids(pts, "points", n, o);
    json_t *fj = json_object_get(holder, "filter");
    if (!fj || json_is_null(fj)) {
        qxs_api_fail(o, 422, "give 'points' (a list of ids) or 'filter'");
        return NULL;
    }
    qxs_filter *f;
    if (qxs_api_filter(holder, "filter", &f, o)) return NULL;
    sel_ctx sc;
    qxs_pid *ids = NULL;
    if (!select_filter(c, f, &sc, o) && !select_run(c, &sc, o)) {
        ids = sc.ids ? sc.ids : qx_malloc(sizeof *ids);
        *n = sc.n;
        qx_free(sc.keys);
        if (!ids) qxs_api_fail(o, 500, "out of memory");
    }
    qxs_filter_free(f);
    return ids;
}

void qxs_api_delete(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) {
    size_t n = 0;
    qxs_pid *ids = select_points(c, b, &n, o);
    if (!ids) return;
    uint64_t lsn = 0;
    size_t removed = 0;
    int rc = n ? qxs_coll_delete(s, c, ids, n, &lsn, &removed) : 0;
    qx_free(ids);
    if (rc) qxs_api_fail(o, write_status(rc), "delete failed: %s", qx_last_error());
    else
        qxs_api_ok(o, json_pack("{s:I, s:s, s:I}", "operation_id", (json_int_t)lsn, "status", "completed", "deleted",
                                (json_int_t)removed));
}

/* One point by id as JSON, or NULL if absent. */
static json_t *point_by_id(qxs_coll *c, const qxs_pid *id, const qxs_psel *ps, int wv) {
    float *vec = wv ? qx_malloc(c->d * sizeof *vec) : NULL;
    uint8_t *pl = NULL;
    uint32_t plen = 0;
    json_t *p = NULL;
    if ((!wv || vec) && !qxs_coll_get_point(c, id, vec, ps && ps->mode ? &pl : NULL, &plen))
        p = qxs_api_point(c, id, vec, pl, plen, ps, NULL);
    qx_free(vec);
    qx_free(pl);
    return p;
}

void qxs_api_get_point(qxs_coll *c, const qxs_pid *pid, qxs_reply *o) {
    qxs_psel all = {1, NULL};
    json_t *p = point_by_id(c, pid, &all, 1);
    char t[QXS_PID_STRLEN];
    if (!p) qxs_api_fail(o, 404, "point %s not found in collection '%s'", qxs_pid_format(pid, t), c->name);
    else qxs_api_ok(o, p);
}

void qxs_api_retrieve(qxs_coll *c, json_t *b, qxs_reply *o) {
    int wv;
    qxs_psel ps;
    if (qxs_api_bool(b, "with_vector", 1, &wv, o) || qxs_api_psel(json_object_get(b, "with_payload"), 1, &ps, o))
        return;
    size_t n;
    qxs_pid *ids = parse_pids(json_object_get(b, "ids"), "ids", &n, o);
    if (!ids) {
        json_decref(ps.fields);
        return;
    }
    if (n * (1 + (wv ? c->d : 0)) > QXS_MAX_REPLY_VALUES) { /* n <= 65536, d <= 65536 */
        qxs_api_fail(o, 422, "the reply would hold more than %d numbers (ids x (1 + dimension with with_vector)): "
                             "ask for fewer ids or drop 'with_vector'", QXS_MAX_REPLY_VALUES);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *p = point_by_id(c, &ids[i], &ps, wv);
            if (p) json_array_append_new(arr, p);
        }
        qxs_api_ok(o, arr);
    }
    json_decref(ps.fields);
    qx_free(ids);
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
    sel_ctx sc;
    if (select_filter(c, f, &sc, o)) goto out;
    sc.has_from = has_from;
    sc.from = from;
    if (select_run(c, &sc, o)) goto out;
    pk *v = qx_malloc((sc.n + 1) * sizeof *v);
    json_t *arr = json_array(), *next = json_null();
    if (v && arr) {
        for (size_t i = 0; i < sc.n; i++) v[i] = (pk){sc.ids[i], sc.keys[i]};
        qsort(v, sc.n, sizeof *v, cmp_pk); /* one pass per page: O(n log n) */
        for (size_t i = 0; i < sc.n && json_array_size(arr) < (size_t)limit; i++) {
            json_t *p = point_by_key(c, v[i].key, &ps, wv, NULL);
            if (p) json_array_append_new(arr, p);
        }
        if (sc.n > (size_t)limit) {
            json_decref(next);
            next = qxs_pid_to_json(&v[limit].pid);
        }
        qxs_api_ok(o, json_pack("{s:o, s:o}", "points", arr, "next_page_offset", next));
    } else {
        json_decref(arr);
        json_decref(next);
        qxs_api_fail(o, 500, "out of memory");
    }
    qx_free(v);
    qx_free(sc.ids);
    qx_free(sc.keys);
out:
    qxs_filter_free(f);
    json_decref(ps.fields);
}

typedef struct count_ctx {
    qxs_coll *c;
    qxs_filter *f;
    size_t n;
} count_ctx;

static int count_one(void *ctx, const qxs_pid *id, int64_t rowkey, const uint8_t *payload, uint32_t plen) {
    count_ctx *k = ctx;
    k->n += (size_t)qxs_filter_test(k->c, k->f, id, rowkey, payload, plen, 0);
    return 0;
}

void qxs_api_count(qxs_coll *c, json_t *b, qxs_reply *o) {
    int exact;
    if (qxs_api_bool(b, "exact", 1, &exact, o)) return;
    qxs_filter *f;
    if (qxs_api_filter(b, "filter", &f, o)) return;
    qxs_pidxset *px = qxs_pidx_get(c);
    if (!px) {
        qxs_filter_free(f);
        qxs_api_fail(o, 500, "payload indexes: %s", qx_last_error());
        return;
    }
    count_ctx k = {c, f, 0};
    qxs_pidx_rdlock(px);
    if (f) qxs_pidx_bind(px, f);
    qxs_coll_foreach(c, count_one, &k);
    qxs_pidx_unlock(px);
    qxs_filter_free(f);
    qxs_api_ok(o, json_pack("{s:I}", "count", (json_int_t)k.n));
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
    qxs_pid *ids = select_points(c, b, &n, o);
    if (!ids) return;
    qxs_bytes *nb = qx_calloc(n ? n : 1, sizeof *nb);
    char **txt = qx_calloc(n ? n : 1, sizeof *txt);
    json_t **np = qx_calloc(n ? n : 1, sizeof *np);
    qxs_pidxset *px = qxs_pidx_get(c);
    size_t m = 0;
    int locked = 0;
    if (!nb || !txt || !np || !px) {
        qxs_api_fail(o, 500, "out of memory");
        goto out;
    }
    qxs_pidx_rmw_lock(px);
    qxs_pidx_rdlock(px);
    locked = 1;
    /* the new payloads, computed from the current ones; an id that does not
     * exist is a 404 (as in Qdrant), nothing written */
    for (size_t i = 0; i < n; i++) {
        uint8_t *cur = NULL;
        uint32_t clen = 0;
        char t[QXS_PID_STRLEN];
        if (qxs_coll_get_point(c, &ids[i], NULL, &cur, &clen)) {
            qxs_api_fail(o, 404, "no point with id %s in collection '%s'", qxs_pid_format(&ids[i], t), c->name);
            goto out;
        }
        json_t *j = mode == 's' || mode == 'd' ? (clen ? json_loadb((const char *)cur, clen, 0, NULL) : NULL) : NULL;
        qx_free(cur);
        if (!j) j = json_object();
        if (mode == 's' || mode == 'o') json_object_update(j, pl);
        else if (mode == 'd') {
            size_t k;
            json_t *e;
            json_array_foreach(keysj, k, e) json_object_del(j, json_string_value(e));
        }
        np[m] = j;
        char err[300], what[64];
        snprintf(what, sizeof what, "point %s", qxs_pid_format(&ids[i], t));
        if (qxs_pidx_check(px, j, err, sizeof err)) {
            qxs_api_fail(o, 422, "%s: %s", what, err);
            m++;
            goto out;
        }
        if (payload_bytes(j, &txt[m], &nb[m], o, what)) {
            m++;
            goto out;
        }
        ids[m++] = ids[i];
    }
    uint64_t lsn = 0;
    size_t updated = 0;
    int rc = m ? qxs_coll_set_payload(s, c, ids, nb, m, &lsn, &updated) : 0;
    if (rc) qxs_api_fail(o, write_status(rc), "payload update failed: %s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)lsn, "status", "completed"));
out:
    if (locked) {
        qxs_pidx_unlock(px);
        qxs_pidx_rmw_unlock(px);
    }
    for (size_t i = 0; i < m; i++) {
        json_decref(np[i]);
        qx_free(txt[i]);
    }
    qx_free(np);
    qx_free(txt);
    qx_free(nb);
    qx_free(ids);
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
    int rc = qxs_pidx_create(c, json_string_value(fn), type);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)0, "status", "completed"));
}

void qxs_api_index_drop(qxs_coll *c, const char *field, qxs_reply *o) {
    int rc = qxs_pidx_drop(c, field);
    if (rc) qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
    else qxs_api_ok(o, json_pack("{s:I, s:s}", "operation_id", (json_int_t)0, "status", "completed"));
}
