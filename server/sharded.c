/* server/sharded.c — a sharded index (the manifest an `mpirun … qinx-mpi
 * build --mpi` writes, qinx/shard.h) served as one read-only collection:
 * `qinx serve --sharded NAME=MANIFEST`.
 *
 * Decisions:
 * 1. Read-only. A sharded index is the output of an offline build: codes and
 *    row ids, no raw vectors, no payloads, no write-ahead log. Importing it
 *    into a stored collection would need the raw vectors back (the base file,
 *    as large as the data) and make the server hold what the build was made
 *    to avoid holding. So every write (upsert, delete, payload, payload
 *    index, rebuild, snapshot, PATCH, DELETE or PUT of the collection) is
 *    refused with 403 and a message saying how to change it: build a new
 *    index and restart with it. Reads that need stored vectors or payloads
 *    (retrieve, get point, scroll, query by point id, exact search, filters,
 *    with_vector) are refused with 403 (endpoints) or 422 (a field of a
 *    search), naming what the index lacks.
 * 2. What is answered: GET /collections (listed), GET /collections/NAME
 *    (Qdrant's shape plus "read_only" and "sharded": the manifest and each
 *    shard's URI, rows and bytes), …/exists, points/search, search/batch,
 *    points/query (a vector or {"nearest": vector}), query/batch and
 *    points/count. A search probes every shard with the same parameters and
 *    keeps the k best of the shards' k best (qx_sharded_search): the shards
 *    share one trained model, so this is the single index's answer. Point
 *    ids are the base's row numbers, as `qinx search` reports them. Scores
 *    follow the server's conventions: Euclid (manifest metric l2) = the
 *    Euclidean distance, Dot (ip) = the inner product.
 * 3. Start-up: every manifest and shard is verified (sizes, CRC-32, model)
 *    while /readyz says 503; any failure, or a name that a stored collection
 *    also uses, stops the server (exit 1) naming the cause: the operator
 *    asked for this index, and serving it with a shard missing would answer
 *    with rows silently gone.
 * 4. The set is fixed once the server is ready, so requests read it without
 *    a lock; a const qx_sharded is safe to search from many threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/ivf.h"
#include "qinx/shard.h"
#include "api_util.h"
#include "sharded.h"

struct qxs_sharded_coll {
    char name[65];
    char manifest[PATH_MAX];
    qx_sharded *sh;
    /* only d and distance are set: the vector checks of api.c take a collection */
    qxs_coll *shape;
};

static void free_one(qxs_sharded_coll *sc) {
    qx_sharded_free(sc->sh);
    qx_free(sc->shape);
}

void qxs_sharded_free_all(qxs_server *s) {
    for (size_t i = 0; i < s->nsharded; i++) free_one(&s->sharded[i]);
    qx_free(s->sharded);
    s->sharded = NULL;
    s->nsharded = 0;
}

const qxs_sharded_coll *qxs_sharded_find(const qxs_server *s, const char *name) {
    for (size_t i = 0; i < s->nsharded; i++)
        if (!strcmp(s->sharded[i].name, name)) return &s->sharded[i];
    return NULL;
}

const char *qxs_sharded_name(const qxs_server *s, size_t i) { return s->sharded[i].name; }

int qxs_sharded_open_all(qxs_server *s) {
    size_t n = s->cfg.nsharded;
    if (n == 0) return 0;
    qxs_sharded_coll *all = qx_calloc(n, sizeof *all);
    if (!all) return qx_error_set(QX_ENOMEM, "sharded collections: out of memory");
    int rc = 0;
    size_t done = 0;
    for (; rc == 0 && done < n; done++) {
        const char *name = s->cfg.sharded[done].name, *path = s->cfg.sharded[done].manifest;
        qxs_sharded_coll *sc = &all[done];
        for (size_t j = 0; j < done; j++)
            if (!strcmp(all[j].name, name))
                rc = qx_error_set(QX_EEXIST, "--sharded: the name '%s' is given twice", name);
        char dir[PATH_MAX + 80];
        struct stat st;
        qxs_coll *c = rc ? NULL : qxs_coll_get(s, name);
        snprintf(dir, sizeof dir, "%s/collections/%s", s->cfg.data, name);
        if (!rc && (c || stat(dir, &st) == 0))
            rc = qx_error_set(QX_EEXIST,
                              "--sharded %s=%s: a stored collection '%s' exists (%s): a sharded collection "
                              "needs a name of its own",
                              name, path, name, dir);
        qxs_coll_put(c);
        if (rc) break;
        snprintf(sc->name, sizeof sc->name, "%s", name);
        snprintf(sc->manifest, sizeof sc->manifest, "%s", path);
        double t0 = qx_now();
        if ((rc = qx_sharded_open(&sc->sh, path))) {
            char why[512]; /* copied: the message is rewritten below */
            snprintf(why, sizeof why, "%s", qx_last_error());
            rc = qx_error_set(rc, "--sharded %s=%s: %s", name, path, why);
            break;
        }
        const qx_manifest *m = qx_sharded_manifest(sc->sh);
        if (!(sc->shape = qx_calloc(1, sizeof *sc->shape))) {
            rc = qx_error_set(QX_ENOMEM, "sharded collections: out of memory");
            break;
        }
        sc->shape->d = m->d;
        sc->shape->distance = m->metric == QX_METRIC_IP ? QXS_DOT : QXS_EUCLID;
        snprintf(sc->shape->name, sizeof sc->shape->name, "%s", name);
        qxs_log(QXS_LOG_INFO,
                "sharded collection %s: %llu points, d=%zu, %s, %zu shards, verified and loaded from %s in %.3f s",
                name, (unsigned long long)m->rows, m->d, qxs_distance_name(sc->shape->distance), m->nshards, path,
                qx_now() - t0);
    }
    if (rc) {
        for (size_t i = 0; i < n; i++) free_one(&all[i]);
        qx_free(all);
        return rc;
    }
    s->sharded = all;
    s->nsharded = n;
    return 0;
}

/* ---- replies -------------------------------------------------------------------- */

static void refuse_write(const qxs_sharded_coll *sc, qxs_reply *o) {
    qxs_api_fail(o, 403,
                 "collection '%s' is a read-only sharded index (manifest %s): it cannot be changed through the "
                 "API; build a new index (qinx build, or mpirun ... qinx-mpi build --mpi) and restart the "
                 "server with --sharded %s=NEW_MANIFEST",
                 sc->name, sc->manifest, sc->name);
}

static void refuse_read(const qxs_sharded_coll *sc, const char *what, qxs_reply *o) {
    qxs_api_fail(o, 403,
                 "collection '%s' is a sharded index (manifest %s): it holds codes and row ids only, no stored "
                 "vectors or payloads, so %s is not available (search, query, count and the collection's "
                 "info are)",
                 sc->name, sc->manifest, what);
}

static void info(const qxs_sharded_coll *sc, qxs_reply *o) {
    const qx_manifest *m = qx_sharded_manifest(sc->sh);
    size_t bytes = 0, M = 0;
    qx_quant_kind kind = 0;
    for (size_t i = 0; i < m->nshards; i++) {
        qx_ivf_info in;
        if (qx_ivf_get_info(qx_sharded_shard(sc->sh, i), &in)) continue;
        bytes += in.bytes;
        M = in.M;
        kind = in.quant_kind;
    }
    json_t *shards = json_array();
    for (size_t i = 0; shards && i < m->nshards; i++) {
        const qx_shard_entry *e = &m->shards[i];
        json_array_append_new(shards, json_pack("{s:s, s:[I, I], s:I}", "uri", e->uri, "rows",
                                                (json_int_t)e->row_begin, (json_int_t)e->row_end, "bytes",
                                                (json_int_t)e->bytes));
    }
    json_t *res = json_pack(
        "{s:s, s:s, s:b, s:I, s:I, s:{s:{s:{s:I, s:s}, s:{s:s, s:I, s:I}}}, s:{s:s, s:I, s:I, s:I, s:I, s:I}, "
        "s:{s:s, s:I, s:o}}",
        "name", sc->name, "status", "green", "read_only", 1, "points_count", (json_int_t)m->rows,
        "indexed_vectors_count", (json_int_t)m->rows, "config", "params", "vectors", "size", (json_int_t)m->d,
        "distance", qxs_distance_name(sc->shape->distance), "quantizer", "kind", qx_quantizer_kind_name(kind),
        "bytes", (json_int_t)m->code_size, "nlist", (json_int_t)m->nlist, "index", "state", "ivf", "nlist",
        (json_int_t)m->nlist, "code_size", (json_int_t)m->code_size, "M", (json_int_t)M, "indexed_vectors",
        (json_int_t)m->rows, "bytes", (json_int_t)bytes, "sharded", "manifest", sc->manifest, "shards_count",
        (json_int_t)m->nshards, "shards", shards ? shards : json_array());
    qxs_api_ok(o, res);
}

/* One search (is_query 0) or query (1) object -> array of hits (NULL, o
 * filled, on error). *budget: numbers the reply may still hold. Parameters
 * as for a stored collection (api.c's search_one): limit/top, offset,
 * params.nprobe / hnsw_ef / rerank, score_threshold, with_payload (there is
 * none to return); filter, exact and with_vector need what the index lacks. */
static json_t *search_one(qxs_server *s, const qxs_sharded_coll *sc, json_t *b, qxs_reply *o, const char *what,
                          size_t *budget, int is_query) {
    if (!json_is_object(b)) {
        qxs_api_fail(o, 422, "%s: a search must be an object", what);
        return NULL;
    }
    long long k, offset = 0, nprobe = 0, rerank = 0, ef = 0, ignored = 0;
    int exact = 0, wv = 0;
    json_t *lim = json_object_get(b, "limit") ? json_object_get(b, "limit") : json_object_get(b, "top");
    json_t *tmp = json_object();
    if (lim) json_object_set(tmp, "limit", lim);
    int bad = qxs_api_int(tmp, "limit", 1, QX_MAX_K, QXS_SEARCH_LIMIT_DEFAULT, &k, o);
    json_decref(tmp);
    if (bad || qxs_api_int(b, "offset", 0, QX_MAX_K, 0, &offset, o) || qxs_api_bool(b, "with_vector", 0, &wv, o)) {
        qxs_api_name_failure(o, what);
        return NULL;
    }
    if (k + offset > QX_MAX_K) {
        qxs_api_fail(o, 422, "%s: limit + offset = %lld above %d", what, k + offset, QX_MAX_K);
        return NULL;
    }
    json_t *params = json_object_get(b, "params");
    if (params && !json_is_null(params)) {
        if (!json_is_object(params)) {
            qxs_api_fail(o, 422, "%s: 'params' must be an object", what);
            return NULL;
        }
        if (qxs_api_int(params, "nprobe", 1, QX_MAX_NLIST, 0, &nprobe, o) ||
            qxs_api_int(params, "rerank", 0, QX_MAX_K, 0, &rerank, o) ||
            qxs_api_int(params, "shortlist", 0, QX_MAX_SHORTLIST, 0, &ignored, o) ||
            qxs_api_bool(params, "exact", 0, &exact, o) || qxs_api_int(params, "hnsw_ef", 0, 1 << 20, 0, &ef, o)) {
            qxs_api_name_failure(o, what);
            return NULL;
        }
        if (!nprobe && ef) nprobe = ef / 8 > 0 ? ef / 8 : 1;
    }
    const char *lacks = NULL;
    json_t *f = json_object_get(b, "filter");
    if (f && !json_is_null(f)) lacks = "a filter (the index holds no payloads)";
    else if (exact) lacks = "an exact search (the index holds codes, not the raw vectors)";
    else if (wv) lacks = "with_vector (the index holds codes, not the raw vectors)";
    if (lacks) {
        qxs_api_fail(o, 422, "%s: collection '%s' is a sharded index: %s is not available", what, sc->name, lacks);
        return NULL;
    }
    double thr = 0;
    json_t *st = json_object_get(b, "score_threshold");
    int has_thr = st && !json_is_null(st);
    if (has_thr) {
        if (!json_is_number(st)) {
            qxs_api_fail(o, 422, "%s: 'score_threshold' must be a number", what);
            return NULL;
        }
        thr = json_number_value(st);
    }
    qxs_psel ps;
    if (qxs_api_psel(json_object_get(b, "with_payload"), 0, &ps, o)) {
        qxs_api_name_failure(o, what);
        return NULL;
    }
    json_decref(ps.fields);
    if ((size_t)k * 2 > *budget) {
        qxs_api_fail(o, 422, "%s: the reply would hold more than %d numbers (limit x 2, summed over a batch): lower "
                     "'limit' or split the batch", what, QXS_MAX_REPLY_VALUES);
        return NULL;
    }
    *budget -= (size_t)k * 2;
    json_t *vv = json_object_get(b, is_query ? "query" : "vector");
    if (!vv) {
        qxs_api_fail(o, 422, "%s: missing field '%s'", what, is_query ? "query" : "vector");
        return NULL;
    }
    if (is_query && json_is_object(vv)) {
        json_t *n = json_object_get(vv, "nearest");
        if (!n || json_object_size(vv) != 1) {
            qxs_api_fail(o, 422, "%s: 'query' as an object must be {\"nearest\": vector}", what);
            return NULL;
        }
        vv = n;
    }
    if (is_query && (json_is_integer(vv) || json_is_string(vv))) {
        qxs_api_fail(o, 422, "%s: collection '%s' is a sharded index: a query by point id needs the stored vector "
                     "of that point, which the index does not hold; send the vector", what, sc->name);
        return NULL;
    }
    size_t kk = (size_t)(k + offset);
    float *q = qx_aligned_alloc(sc->shape->d * sizeof(float));
    float *dist = qx_malloc(kk * sizeof *dist);
    int64_t *ids = qx_malloc(kk * sizeof *ids);
    json_t *res = NULL;
    if (!q || !dist || !ids) {
        qxs_api_fail(o, 500, "out of memory");
        goto out;
    }
    if (qxs_api_vector(vv, sc->shape, q, o, what)) goto out;
    qx_search_params sp;
    qx_search_params_init(&sp);
    if (nprobe) sp.nprobe = (size_t)nprobe;
    sp.rerank = rerank && (size_t)rerank < kk ? kk : (size_t)rerank;
    sp.threads = 1; /* the request thread alone: requests run in parallel already */
    if (qx_sharded_search(sc->sh, q, 1, kk, &sp, dist, ids)) {
        qxs_api_fail(o, 500, "%s: search failed: %s", what, qx_last_error());
        goto out;
    }
    atomic_fetch_add(&s->m.searches, 1);
    res = json_array();
    int higher_better = sc->shape->distance != QXS_EUCLID;
    for (size_t i = (size_t)offset; res && i < kk && ids[i] >= 0; i++) {
        double sc_ = qxs_api_score(sc->shape->distance, dist[i]);
        if (!isfinite(sc_)) {
            qxs_api_fail(o, 500, "%s: non-finite score for point %lld", what, (long long)ids[i]);
            json_decref(res);
            res = NULL;
            break;
        }
        if (has_thr && (higher_better ? sc_ < thr : sc_ > thr)) break;
        json_t *p = json_pack("{s:I, s:f}", "id", (json_int_t)ids[i], "score", sc_);
        if (!p || json_array_append_new(res, p)) {
            json_decref(res);
            res = NULL;
            qxs_api_fail(o, 500, "out of memory");
        }
    }
out:
    qx_aligned_free(q);
    qx_free(dist);
    qx_free(ids);
    return res;
}

static void run_batch(qxs_server *s, const qxs_sharded_coll *sc, json_t *b, int query, qxs_reply *o) {
    json_t *arr = json_object_get(b, "searches");
    if (!json_is_array(arr)) {
        qxs_api_fail(o, 422, "missing or non-array field 'searches'");
        return;
    }
    size_t n = json_array_size(arr);
    if (n > QXS_MAX_SEARCH_BATCH) {
        qxs_api_fail(o, 422, "%zu %s in one batch; at most %d", n, query ? "queries" : "searches",
                     QXS_MAX_SEARCH_BATCH);
        return;
    }
    json_t *out = json_array();
    size_t budget = QXS_MAX_REPLY_VALUES;
    for (size_t i = 0; out && i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "searches[%zu]", i);
        json_t *r = search_one(s, sc, json_array_get(arr, i), o, what, &budget, query);
        if (!r) {
            json_decref(out);
            return;
        }
        json_array_append_new(out, query ? json_pack("{s:o}", "points", r) : r);
    }
    qxs_api_ok(o, out);
}

static void count(const qxs_sharded_coll *sc, json_t *b, qxs_reply *o) {
    json_t *f = json_object_get(b, "filter");
    int exact;
    if (qxs_api_bool(b, "exact", 1, &exact, o)) return;
    if (f && !json_is_null(f)) {
        qxs_api_fail(o, 422, "collection '%s' is a sharded index: a filter is not available (the index holds no "
                     "payloads)", sc->name);
        return;
    }
    qxs_api_ok(o, json_pack("{s:I}", "count", (json_int_t)qx_sharded_manifest(sc->sh)->rows));
}

void qxs_sharded_handle(qxs_server *s, const qxs_sharded_coll *sc, const qxs_route *r, const char *method,
                        const char *body, size_t len, qxs_reply *o) {
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    switch (r->ep) {
    case QXS_EP_COLLECTION:
        if (is_get) info(sc, o);
        else refuse_write(sc, o);
        return;
    case QXS_EP_EXISTS: qxs_api_ok(o, json_pack("{s:b}", "exists", 1)); return;
    case QXS_EP_SEARCH: case QXS_EP_SEARCH_BATCH: case QXS_EP_QUERY: case QXS_EP_QUERY_BATCH:
    case QXS_EP_PCOUNT: break;
    case QXS_EP_POINTS:
        if (!strcmp(method, "PUT")) refuse_write(sc, o);
        else refuse_read(sc, "retrieving points", o);
        return;
    case QXS_EP_POINT: refuse_read(sc, "getting a point", o); return;
    case QXS_EP_SCROLL: refuse_read(sc, "scrolling", o); return;
    case QXS_EP_REBUILD: case QXS_EP_REBUILD_JOB:
        if (is_get) refuse_read(sc, "the rebuild history (a sharded index is never rebuilt by the server)", o);
        else refuse_write(sc, o);
        return;
    case QXS_EP_SNAPSHOTS: case QXS_EP_SNAPSHOT:
        if (is_get) refuse_read(sc, "snapshots (copy the manifest and its shard files instead)", o);
        else refuse_write(sc, o);
        return;
    default: refuse_write(sc, o); return; /* delete, payload, payload index, snapshot recovery */
    }
    json_t *b = qxs_api_body(body, len, o, 1);
    if (!b) return;
    size_t budget = QXS_MAX_REPLY_VALUES;
    json_t *res;
    switch (r->ep) {
    case QXS_EP_SEARCH:
        if ((res = search_one(s, sc, b, o, "search", &budget, 0))) qxs_api_ok(o, res);
        break;
    case QXS_EP_QUERY:
        if ((res = search_one(s, sc, b, o, "query", &budget, 1))) qxs_api_ok(o, json_pack("{s:o}", "points", res));
        break;
    case QXS_EP_SEARCH_BATCH: run_batch(s, sc, b, 0, o); break;
    case QXS_EP_QUERY_BATCH: run_batch(s, sc, b, 1, o); break;
    default: count(sc, b, o); break;
    }
    json_decref(b);
}
