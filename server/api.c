/* server/api.c — the REST endpoints (Qdrant-shaped): validation of every
 * field against named limits, then a call into collection.c / rebuild.c.
 *
 * Decisions:
 * 1. Status codes: 400 = the body is not JSON (or not an object); 422 = it is
 *    JSON but a field is missing, of the wrong type, or out of range (wrong
 *    dimension, NaN/Inf after conversion to float, limit outside 1..10000,
 *    negative or non-integer id, a number too large for a double); 404 =
 *    unknown collection, point or job; 409 = collection exists / rebuild
 *    already running; 503 = still recovering.
 * 2. Ids are JSON integers in 0..2^63-1 (the index keeps int64 ids and uses
 *    -1 as "no result"); Qdrant's UUID ids are not supported (422).
 * 3. Cosine collections normalise vectors at upsert and query; a zero vector
 *    cannot be normalised (422), nor one whose norm is below FLT_MIN. Scores: Cosine = cosine similarity and Dot =
 *    inner product (higher is better), Euclid = Euclidean distance (not
 *    squared; lower is better) — the same conventions as Qdrant.
 * 4. Duplicate ids inside one upsert batch: the last occurrence wins, as if
 *    the points had been sent one by one.
 */
#define _GNU_SOURCE
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "qinx/fastscan.h"
#include "qinx/ivf.h"
#include "qinx/vecfile.h"
#include "api_util.h"
#include "payload_indexes.h"
#include "snapshot.h"
#include "search_body.h"
#include "sharded.h"

#ifndef QXS_VERSION
#define QXS_VERSION "0.9.0"
#endif

void qxs_api_fail(qxs_reply *o, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qxs_api_fail(qxs_reply *o, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof o->err, fmt, ap);
    va_end(ap);
    o->status = status;
    if (o->result) json_decref(o->result);
    o->result = NULL;
}

void qxs_api_ok(qxs_reply *o, json_t *result) {
    if (!result) {
        qxs_api_fail(o, 500, "out of memory building the reply");
        return;
    }
    o->status = 200;
    o->result = result;
}

int qxs_api_status(int qx_code) {
    switch (qx_code) {
    case QXS_EMEMLIMIT: return 507;
    case QX_ESTATE: return 409;
    case QX_ENOTFOUND: return 404;
    case QX_EEXIST: return 409;
    case QX_EINVAL: case QX_EDIM: case QX_ELIMIT: return 422;
    default: return 500;
    }
}

/* Parse the body as a JSON object. 400 on broken JSON; numbers too large for
 * a double are well-formed JSON but out of range: 422. */
json_t *qxs_api_body(const char *body, size_t len, qxs_reply *o, int required) {
    if (len == 0) {
        if (!required) return json_object();
        qxs_api_fail(o, 400, "request body required (a JSON object)");
        return NULL;
    }
    const char *nul = memchr(body, 0, len);
    if (nul) { /* jansson would say "end of file expected" */
        qxs_api_fail(o, 400, "request body has a raw NUL byte at offset %zu (JSON text cannot hold one; inside a string "
                     "write \\u0000)", (size_t)(nul - body));
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    if (!j) {
        if (json_error_code(&e) == json_error_numeric_overflow)
            qxs_api_fail(o, 422, "number out of range at line %d column %d: %s", e.line, e.column, e.text);
        else
            qxs_api_fail(o, 400, "malformed JSON at line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        qxs_api_fail(o, 400, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* integer field in [lo, hi]; absent -> def. 0 or fails (422). */
int qxs_api_int(json_t *obj, const char *key, long long lo, long long hi, long long def, long long *out,
                   qxs_reply *o) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        qxs_api_fail(o, 422, "'%s' must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        qxs_api_fail(o, 422, "'%s' = %lld outside %lld..%lld", key, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int qxs_api_bool(json_t *obj, const char *key, int def, int *out, qxs_reply *o) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        qxs_api_fail(o, 422, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* Prefix the failure message in o with what ("searches[3]: 'limit' must be ..."). */
void qxs_api_name_failure(qxs_reply *o, const char *what) {
    char t[sizeof o->err];
    snprintf(t, sizeof t, "%.40s: %.460s", what, o->err); /* what is short; err keeps its head */
    memcpy(o->err, t, sizeof t);
}

int qxs_api_finish_vector(const qxs_coll *c, float *out, qxs_reply *o, const char *what);

/* Vector of exactly d finite floats into out (normalised for Cosine). */
int qxs_api_vector(json_t *v, const qxs_coll *c, float *out, qxs_reply *o, const char *what) {
    if (!json_is_array(v)) {
        qxs_api_fail(o, 422, "%s: 'vector' must be an array of %zu numbers", what, c->d);
        return -1;
    }
    size_t n = json_array_size(v);
    if (n != c->d) {
        qxs_api_fail(o, 422, "%s: wrong vector dimension: expected %zu, got %zu", what, c->d, n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            qxs_api_fail(o, 422, "%s: vector element %zu is not a number", what, i);
            return -1;
        }
        double f = json_number_value(x);
        if (!isfinite(f) || fabs(f) > FLT_MAX) {
            qxs_api_fail(o, 422, "%s: vector element %zu (%g) is not a finite 32-bit float", what, i, f);
            return -1;
        }
        out[i] = (float)f;
    }
    return qxs_api_finish_vector(c, out, o, what);
}

/* The checks and the Cosine normalisation every parsed vector goes through.
 * Cosine: a norm below FLT_MIN (the smallest normal float, 1.18e-38) is
 * refused, not only zero: [1e-40, 0, 0] has a direction in exact arithmetic,
 * but 1/norm in float is infinite and the stored vector became NaN (issue
 * 19). Above FLT_MIN, 1/norm <= 8.5e37 is finite even in float; the division
 * is done in double all the same, and the result is checked. */
int qxs_api_finish_vector(const qxs_coll *c, float *out, qxs_reply *o, const char *what) {
    size_t n = c->d;
    double norm = 0;
    for (size_t i = 0; i < n; i++) norm += (double)out[i] * out[i];
    if (c->distance == QXS_COSINE) {
        if (!(norm > 0) || !isfinite(norm)) {
            qxs_api_fail(o, 422, "%s: a zero vector has no direction (Cosine distance)", what);
            return -1;
        }
        double len = sqrt(norm);
        if (len < (double)FLT_MIN) {
            qxs_api_fail(o, 422, "%s: vector norm %.3g is below %.3g (the smallest normal 32-bit float): too small to "
                         "normalise for Cosine distance",
                 what, len, (double)FLT_MIN);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            out[i] = (float)(out[i] / len);
            if (!isfinite(out[i])) { /* cannot happen above FLT_MIN; never store it if it does */
                qxs_api_fail(o, 422, "%s: vector element %zu is not finite after normalisation", what, i);
                return -1;
            }
        }
    } else if (!(norm <= (double)FLT_MAX / 4)) {
        /* every element fits a float, but distances to it would not:
         * ||a - b||² <= 2||a||² + 2||b||² and |<a, b>| <= ||a|| ||b|| stay
         * finite in float only below this (the sum is in double, so it never
         * overflows itself) */
        qxs_api_fail(o, 422, "%s: vector too large: squared norm %.3g above %.3g, distances would overflow 32-bit floats",
             what, norm, (double)FLT_MAX / 4);
        return -1;
    }
    return 0;
}

double qxs_api_score(qxs_distance d, float dist) {
    switch (d) {
    case QXS_COSINE: return 1.0 - dist / 2.0;  /* unit vectors: ||a-b||^2 = 2 - 2cos */
    case QXS_DOT: return -dist;
    default: return sqrt(dist > 0 ? dist : 0);
    }
}

/* ---- collections ------------------------------------------------------------ */

/* "shape" and "fs_steps" of obj (a create body's quantizer, a rebuild body):
 * qinx build's --fs-shape and --fs-steps, checked as it checks them against
 * the bytes and the dimension. Absent or null keeps *product / *steps. 0, or
 * -1 with a 422 in o naming the key (pre: "quantizer." or ""). */
static int parse_fs_options(json_t *obj, const char *pre, int kind, size_t d, qxs_distance dist, size_t bytes,
                            int *product, size_t *steps, qxs_reply *o) {
    json_t *sh = json_object_get(obj, "shape"), *st = json_object_get(obj, "fs_steps");
    int has_sh = sh && !json_is_null(sh), has_st = st && !json_is_null(st);
    if ((has_sh || has_st) && kind != QX_QUANT_FASTSCAN) {
        qxs_api_fail(o, 422, "'%s%s' is a fastscan option, the quantizer kind is %s", pre,
                     has_sh ? "shape" : "fs_steps", qx_quantizer_kind_name(kind));
        return -1;
    }
    if (has_sh) {
        const char *v = json_string_value(sh);
        if (!v || (strcmp(v, "residual") && strcmp(v, "product"))) {
            qxs_api_fail(o, 422, "'%sshape' must be \"residual\" or \"product\"%s%.40s%s", pre, v ? ", got '" : "",
                         v ? v : "", v ? "'" : "");
            return -1;
        }
        *product = !strcmp(v, "product");
    }
    if (has_st) {
        long long n;
        if (qxs_api_int(obj, "fs_steps", 2, QX_FS_MAX_STEPS4, 0, &n, o)) {
            if (*pre) qxs_api_name_failure(o, "quantizer");
            return -1;
        }
        *steps = (size_t)n;
    }
    size_t m4, m8;
    if (kind == QX_QUANT_FASTSCAN && qxs_fs_split(d, dist, bytes, *product, *steps, &m4, &m8)) {
        qxs_api_fail(o, 422, "%s%s", pre, qx_last_error());
        return -1;
    }
    return 0;
}

static void create_collection(qxs_server *s, const qxs_route *r, json_t *b, qxs_reply *o) {
    json_t *vec = json_object_get(b, "vectors");
    if (!json_is_object(vec)) {
        qxs_api_fail(o, 422, "missing object 'vectors' ({\"size\": D, \"distance\": \"Euclid\"|\"Cosine\"|\"Dot\"})");
        return;
    }
    long long d;
    if (!json_object_get(vec, "size")) {
        qxs_api_fail(o, 422, "missing field 'vectors.size'");
        return;
    }
    if (qxs_api_int(vec, "size", 1, QX_MAX_DIM, 0, &d, o)) return;
    json_t *dist = json_object_get(vec, "distance");
    if (!json_is_string(dist)) {
        qxs_api_fail(o, 422, "missing or non-string 'vectors.distance' (Euclid, Cosine or Dot)");
        return;
    }
    qxs_coll_params p = {.d = (size_t)d, .quant_kind = QX_QUANT_RQ, .bytes = 8, .nlist = 0, .min_recall = 0.3,
                         .on_disk = 1, .indexing_threshold = QXS_INDEXING_THRESHOLD_DEFAULT};
    int od;
    if (qxs_api_bool(vec, "on_disk", 1, &od, o)) {
        qxs_api_name_failure(o, "vectors");
        return;
    }
    p.on_disk = od;
    json_t *opt = json_object_get(b, "optimizers_config");
    if (opt && !json_is_null(opt)) {
        long long thr;
        if (!json_is_object(opt)) {
            qxs_api_fail(o, 422, "'optimizers_config' must be an object");
            return;
        }
        if (qxs_api_int(opt, "indexing_threshold", 0, 1000000000000LL, QXS_INDEXING_THRESHOLD_DEFAULT, &thr, o)) {
            qxs_api_name_failure(o, "optimizers_config");
            return;
        }
        p.indexing_threshold = (size_t)thr;
    }
    const char *ds = json_string_value(dist);
    if (!strcmp(ds, "Euclid")) p.distance = QXS_EUCLID;
    else if (!strcmp(ds, "Cosine")) p.distance = QXS_COSINE;
    else if (!strcmp(ds, "Dot")) p.distance = QXS_DOT;
    else {
        qxs_api_fail(o, 422, "unknown distance '%.40s' (Euclid, Cosine or Dot)", ds);
        return;
    }
    json_t *q = json_object_get(b, "quantizer");
    if (q && !json_is_null(q)) {
        if (!json_is_object(q)) {
            qxs_api_fail(o, 422, "'quantizer' must be an object");
            return;
        }
        json_t *kind = json_object_get(q, "kind");
        if (kind && !json_is_string(kind)) {
            qxs_api_fail(o, 422, "'quantizer.kind' must be \"rq\", \"qinco\" or \"fastscan\"");
            return;
        }
        if (kind && strcmp(json_string_value(kind), "rq") && strcmp(json_string_value(kind), "qinco") &&
            strcmp(json_string_value(kind), "fastscan")) {
            qxs_api_fail(o, 422, "unknown quantizer kind '%.40s' (rq, qinco or fastscan)", json_string_value(kind));
            return;
        }
        if (kind && !strcmp(json_string_value(kind), "qinco")) p.quant_kind = QX_QUANT_QINCO;
        if (kind && !strcmp(json_string_value(kind), "fastscan")) p.quant_kind = QX_QUANT_FASTSCAN;
        long long bytes, nlist;
        /* bytes = everything stored per vector but the id: for Euclid and
         * Cosine one of them is the norm byte (steps = bytes - 1). */
        if (qxs_api_int(q, "bytes", 2, QX_MAX_STEPS, 8, &bytes, o)) return;
        if (qxs_api_int(q, "nlist", 0, QX_MAX_NLIST, 0, &nlist, o)) return;
        p.bytes = (size_t)bytes;
        p.nlist = (size_t)nlist;
        if (parse_fs_options(q, "quantizer.", p.quant_kind, p.d, p.distance, p.bytes, &p.fs_product, &p.fs_steps, o))
            return;
    }
    json_t *g = json_object_get(b, "gate");
    if (g && !json_is_null(g)) {
        json_t *mr = json_is_object(g) ? json_object_get(g, "min_recall") : NULL;
        if (!json_is_object(g) || (mr && !json_is_number(mr))) {
            qxs_api_fail(o, 422, "'gate' must be {\"min_recall\": number in [0,1]}");
            return;
        }
        if (mr) {
            double v = json_number_value(mr);
            if (!(v >= 0 && v <= 1)) {
                qxs_api_fail(o, 422, "'gate.min_recall' must be in [0,1]");
                return;
            }
            p.min_recall = v;
        }
    }
    int rc = qxs_coll_create(s, r->name, &p);
    if (rc) {
        qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
        return;
    }
    qxs_api_ok(o, json_true());
}

static json_t *job_json(const qxs_job *j) {
    static const char *const st[] = {"queued", "running", "succeeded", "rejected", "failed", "canceled"};
    json_t *o = json_pack("{s:I, s:s, s:s, s:f, s:I}", "id", (json_int_t)j->id, "state", st[j->state], "stage",
                          j->stage, "progress", j->progress, "created", (json_int_t)j->t_created);
    if (!o) return NULL;
    if (j->t_start > 0) json_object_set_new(o, "started", json_integer((json_int_t)j->t_start));
    if (j->t_end > 0) json_object_set_new(o, "finished", json_integer((json_int_t)j->t_end));
    if (j->error[0]) json_object_set_new(o, "error", json_string(j->error));
    if (j->report) {
        json_t *rep = json_loads(j->report, 0, NULL);
        if (rep) json_object_set_new(o, "report", rep);
    }
    return o;
}

static json_t *memory_json(qxs_coll *c) {
    qxs_coll_mem m;
    qxs_coll_memory(c, &m);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I}}", "ram_bytes", (json_int_t)m.total_ram,
                     "codes_bytes", (json_int_t)m.codes, "ids_bytes", (json_int_t)m.ids, "index_other_bytes",
                     (json_int_t)m.index_other, "tombstone_bytes", (json_int_t)m.tombstones, "mutable_segment_bytes",
                     (json_int_t)m.mutable_bytes, "raw_vectors_ram_bytes", (json_int_t)m.raw_ram, "disk",
                     "segment_bytes", (json_int_t)m.disk_segments, "wal_bytes", (json_int_t)m.wal);
}

/* PATCH /collections/{c}: Qdrant's update parameters. The one qinx has,
 * optimizers_config.indexing_threshold, is validated and stored; the others
 * are accepted and logged as ignored (qinx sets its own parameters at
 * creation and per rebuild). The reply is Qdrant's `true`, which typed
 * clients expect. An unknown top-level key is a 422 as in Qdrant. */
static void patch_collection(qxs_coll *c, json_t *b, qxs_reply *o) {
    static const char *const known[] = {"optimizers_config", "params", "hnsw_config", "vectors",
                                        "quantization_config", "sparse_vectors", "strict_mode_config", "metadata"};
    char ignored[256] = "";
    const char *k;
    json_t *v, *opt = json_object_get(b, "optimizers_config");
    json_object_foreach(b, k, v) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(k, known[i])) i++;
        if (i == sizeof known / sizeof *known) {
            qxs_api_fail(o, 422, "unknown collection parameter '%.60s'", k);
            return;
        }
        if (i > 0 && !json_is_null(v))
            snprintf(ignored + strlen(ignored), sizeof ignored - strlen(ignored), "%s%s", ignored[0] ? ", " : "", k);
    }
    long long thr = -1;
    if (opt && !json_is_null(opt)) {
        if (!json_is_object(opt)) {
            qxs_api_fail(o, 422, "'optimizers_config' must be an object");
            return;
        }
        if (qxs_api_int(opt, "indexing_threshold", 0, 1000000000000LL, -1, &thr, o)) {
            qxs_api_name_failure(o, "optimizers_config");
            return;
        }
        if (json_object_size(opt) > (size_t)(thr >= 0))
            snprintf(ignored + strlen(ignored), sizeof ignored - strlen(ignored), "%soptimizers_config (but "
                     "indexing_threshold)", ignored[0] ? ", " : "");
    }
    int rc = thr >= 0 ? qxs_coll_set_indexing_threshold(c, (size_t)thr) : 0;
    if (rc) {
        qxs_api_fail(o, qxs_api_status(rc), "update failed: %s", qx_last_error());
        return;
    }
    if (ignored[0]) qxs_log(QXS_LOG_INFO, "collection %s: PATCH ignored %s (qinx has no such setting)", c->name, ignored);
    qxs_api_ok(o, json_true());
}

static void get_collection(qxs_coll *c, qxs_reply *o) {
    json_t *mem = memory_json(c);
    pthread_rwlock_rdlock(&c->rw);
    size_t n = c->store.n_live, nseg = c->store.nsegs;
    qx_ivf_info info;
    int has = c->ivf && !qx_ivf_get_info(c->ivf, &info);
    pthread_rwlock_unlock(&c->rw);
    json_t *idx;
    if (has)
        idx = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "state", "ivf", "nlist", (json_int_t)info.nlist,
                        "code_size", (json_int_t)info.code_size, "M", (json_int_t)info.M, "indexed_vectors",
                        (json_int_t)info.ntotal, "bytes", (json_int_t)info.bytes);
    else
        idx = json_pack("{s:s}", "state", "exact");
    json_t *res = json_pack("{s:s, s:s, s:I, s:I, s:{s:{s:{s:I, s:s}}, s:{s:s, s:I, s:I}, s:{s:f}}, s:o, s:I}",
                            "name", c->name, "status", atomic_load(&c->failed) ? "red" : "green", "points_count",
                            (json_int_t)n, "indexed_vectors_count", (json_int_t)(has ? info.ntotal : 0), "config",
                            "params", "vectors", "size", (json_int_t)c->d, "distance",
                            qxs_distance_name(c->distance), "quantizer", "kind",
                            qx_quantizer_kind_name(c->quant_kind), "bytes", (json_int_t)c->bytes, "nlist",
                            (json_int_t)c->nlist, "gate", "min_recall", c->min_recall, "index", idx, "created",
                            (json_int_t)c->created);
    if (!res) {
        json_decref(mem);
        qxs_api_fail(o, 500, "reply");
        return;
    }
    json_object_set_new(json_object_get(json_object_get(res, "config"), "params"), "on_disk", json_boolean(c->on_disk));
    size_t m4, m8;
    if (c->quant_kind == QX_QUANT_FASTSCAN &&
        !qxs_fs_split(c->d, c->distance, c->bytes, c->fs_product, c->fs_steps, &m4, &m8)) {
        json_t *qc = json_object_get(json_object_get(res, "config"), "quantizer");
        json_object_set_new(qc, "shape", json_string(c->fs_product ? "product" : "residual"));
        json_object_set_new(qc, "fs_steps", json_integer((json_int_t)m4));
    }
    json_object_set_new(json_object_get(res, "config"), "optimizers_config",
                        json_pack("{s:I}", "indexing_threshold", (json_int_t)c->indexing_threshold));
    json_object_set_new(res, "segments_count", json_integer((json_int_t)nseg + 1));
    if (mem) json_object_set_new(res, "memory", mem);
    if (atomic_load(&c->failed)) json_object_set_new(res, "status_reason", json_string(c->red_reason));
    qxs_pidxset *px = qxs_pidx_get(c);
    if (px) { /* Qdrant's payload_schema, with the memory the indexes hold */
        size_t bytes = 0;
        qxs_pidx_rdlock(px);
        pthread_rwlock_rdlock(&c->rw);
        json_t *schema = qxs_pidx_schema(px, &bytes);
        pthread_rwlock_unlock(&c->rw);
        qxs_pidx_unlock(px);
        json_object_set_new(res, "payload_schema", schema);
        json_object_set_new(res, "payload_index_bytes", json_integer((json_int_t)bytes));
    }
    json_t *drift = qxs_drift_json(c);
    if (drift) json_object_set_new(res, "drift", drift);
    pthread_mutex_lock(&c->job_mu);
    if (c->active) json_object_set_new(res, "rebuild", job_json(c->active));
    if (c->last_report) {
        json_t *rep = json_loads(c->last_report, 0, NULL);
        if (rep) json_object_set_new(res, "last_rebuild_report", rep);
    }
    pthread_mutex_unlock(&c->job_mu);
    qxs_api_ok(o, res);
}

/* ---- points: api_points.c ---- */

json_t *qxs_api_vector_json(const float *v, size_t d) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < d; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Numbers a reply of k hits holds (QXS_MAX_REPLY_VALUES caps it). */
static size_t reply_values(const qxs_coll *c, long long k, int wv) {
    return (size_t)k * (2 + (wv ? c->d : 0)); /* k <= 10000, d <= QX_MAX_DIM: no overflow */
}

/* The query vector of a search (vector) or a query (query = vector, point
 * id, or {"nearest": vector | id}) into q; *self = the key of a query point
 * (excluded from its own results) or -1. */
static int query_vector(qxs_coll *c, json_t *b, int is_query, float *q, int64_t *self, qxs_pid *selfpid,
                        qxs_reply *o, const char *what) {
    *self = -1;
    json_t *vv = json_object_get(b, is_query ? "query" : "vector");
    if (!vv) {
        qxs_api_fail(o, 422, "%s: missing field '%s'", what, is_query ? "query" : "vector");
        return -1;
    }
    if (is_query && json_is_object(vv)) {
        json_t *n = json_object_get(vv, "nearest");
        if (!n || json_object_size(vv) != 1) {
            qxs_api_fail(o, 422, "%s: 'query' as an object must be {\"nearest\": vector or point id} "
                                 "(recommend, discover, context, order_by and fusion are not supported)", what);
            return -1;
        }
        vv = n;
    }
    if (is_query && (json_is_integer(vv) || json_is_string(vv))) {
        qxs_pid pid;
        char w[64];
        snprintf(w, sizeof w, "%s: query", what);
        if (qxs_api_pid(vv, &pid, o, w)) return -1;
        int64_t key = -1;
        if (qxs_coll_get_point(c, &pid, q, NULL, NULL)) {
            char t[QXS_PID_STRLEN];
            qxs_api_fail(o, 404, "%s: no point with id %s to query by", what, qxs_pid_format(&pid, t));
            return -1;
        }
        *selfpid = pid;
        key = 0;
        *self = key;
        return qxs_api_finish_vector(c, q, o, what) ? -1 : 0;
    }
    return qxs_api_vector(vv, c, q, o, what);
}

/* One search (is_query 0) or query (1) request object -> array of points
 * (NULL and o filled on error). *budget: numbers the reply may still hold
 * (QXS_MAX_REPLY_VALUES). Qdrant's hnsw_ef maps to a probe count: nprobe =
 * max(1, hnsw_ef / 8) (hnsw_ef 64 -> 8 lists, 128 -> 16, the default). */
static json_t *search_one(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o, const char *what,
                          size_t *budget, int is_query) {
    if (!json_is_object(b)) {
        qxs_api_fail(o, 422, "%s: a search must be an object", what);
        return NULL;
    }
    long long k, nprobe = 0, rerank = 0, shortlist = 0, ef = 0, offset = 0, maxp = 0;
    int exact = 0, wv = 0;
    json_t *lim = json_object_get(b, "limit") ? json_object_get(b, "limit") : json_object_get(b, "top");
    json_t *tmp = json_object();
    if (lim) json_object_set(tmp, "limit", lim);
    int bad = qxs_api_int(tmp, "limit", 1, QX_MAX_K, QXS_SEARCH_LIMIT_DEFAULT, &k, o);
    json_decref(tmp);
    if (bad || qxs_api_int(b, "offset", 0, QX_MAX_K, 0, &offset, o)) {
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
            qxs_api_int(params, "shortlist", 0, QX_MAX_SHORTLIST, 0, &shortlist, o) ||
            qxs_api_bool(params, "exact", 0, &exact, o) || qxs_api_int(params, "hnsw_ef", 0, 1 << 20, 0, &ef, o) ||
            qxs_api_int(params, "max_nprobe", 0, QX_MAX_NLIST, 0, &maxp, o)) {
            qxs_api_name_failure(o, what);
            return NULL;
        }
        if (!nprobe && ef) nprobe = ef / 8 > 0 ? ef / 8 : 1;
    }
    if (qxs_api_bool(b, "with_vector", 0, &wv, o)) {
        qxs_api_name_failure(o, what);
        return NULL;
    }
    double thr = 0;
    json_t *st = json_object_get(b, "score_threshold");
    if (st && !json_is_null(st)) {
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
    size_t values = reply_values(c, k, wv);
    if (values > *budget) {
        qxs_api_fail(o, 422, "%s: the reply would hold more than %d numbers (limit x (2 + dimension with with_vector), "
                     "summed over a batch): lower 'limit', drop 'with_vector' or split the batch",
             what, QXS_MAX_REPLY_VALUES);
        return NULL;
    }
    *budget -= values;
    qxs_filter *f = NULL;
    if (qxs_api_filter(b, "filter", &f, o)) return NULL;
    float *q = qx_aligned_alloc(c->d * sizeof(float));
    json_t *res = NULL;
    int64_t self = -1;
    qxs_pid selfpid;
    if (!q) qxs_api_fail(o, 500, "out of memory");
    else if (query_vector(c, b, is_query, q, &self, &selfpid, o, what) == 0) {
        qxs_search_opts so = {.k = (size_t)(k + offset + (self >= 0)), .nprobe = (size_t)nprobe,
                              .rerank = (size_t)rerank, .shortlist = (size_t)shortlist, .exact = exact,
                              .max_nprobe = (size_t)maxp};
        if (so.rerank && so.rerank < so.k) so.rerank = so.k;
        res = qxs_api_run_search(s, c, q, &so, f, wv, &ps, (size_t)offset, st && !json_is_null(st) ? &thr : NULL, o,
                                 what);
        if (res && self >= 0) { /* drop the query point itself, then keep limit */
            json_t *selfid = qxs_pid_to_json(&selfpid);
            for (size_t i = 0; i < json_array_size(res); i++)
                if (json_equal(json_object_get(json_array_get(res, i), "id"), selfid)) {
                    json_array_remove(res, i);
                    break;
                }
            json_decref(selfid);
        }
        while (res && json_array_size(res) > (size_t)k) json_array_remove(res, json_array_size(res) - 1);
    }
    qx_aligned_free(q);
    qxs_filter_free(f);
    json_decref(ps.fields);
    return res;
}

/* The hot path of POST .../points/search: a body of the common shape is read
 * by qxs_search_body_parse without building a JSON tree (search_body.c).
 * 1 when the request was handled here (reply in o); 0 for any body that
 * parser declines, which then takes the jansson path and gets its reply. */
static int search_fast(qxs_server *s, qxs_coll *c, const char *body, size_t len, qxs_reply *o) {
    float *q = qx_aligned_alloc(c->d * sizeof(float));
    qxs_search_body sb;
    int handled = 0;
    if (q && qxs_search_body_parse(body, len, c->d, QX_MAX_K, QX_MAX_NLIST, q, &sb)) {
        long long k = sb.limit < 0 ? QXS_SEARCH_LIMIT_DEFAULT : sb.limit;
        int wv = sb.with_vector > 0;
        if (reply_values(c, k, wv) <= QXS_MAX_REPLY_VALUES) {
            handled = 1;
            if (qxs_api_finish_vector(c, q, o, "search") == 0) {
                qxs_search_opts so = {.k = (size_t)k,
                                      .nprobe = sb.nprobe < 0 ? 0 : (size_t)sb.nprobe,
                                      .rerank = sb.rerank < 0 ? 0 : (size_t)sb.rerank,
                                      .shortlist = sb.shortlist < 0 ? 0 : (size_t)sb.shortlist,
                                      .exact = sb.exact > 0};
                qxs_psel none = {0, NULL};
                json_t *res = qxs_api_run_search(s, c, q, &so, NULL, wv, &none, 0, NULL, o, "search");
                if (res) qxs_api_ok(o, res);
            }
        }
    }
    qx_aligned_free(q);
    return handled;
}

/* search/batch (query = 0: a list of hit lists) and query/batch (query = 1:
 * a list of {"points": hits}); one reply budget for all of them. */
static void run_batch(qxs_server *s, qxs_coll *c, json_t *b, int query, qxs_reply *o) {
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
        json_t *r = search_one(s, c, json_array_get(arr, i), o, what, &budget, query);
        if (!r) {
            json_decref(out);
            return;
        }
        json_array_append_new(out, query ? json_pack("{s:o}", "points", r) : r);
    }
    qxs_api_ok(o, out);
}

static void search_batch(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) { run_batch(s, c, b, 0, o); }

void qxs_api_query(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) {
    size_t budget = QXS_MAX_REPLY_VALUES;
    json_t *res = search_one(s, c, b, o, "query", &budget, 1);
    if (res) qxs_api_ok(o, json_pack("{s:o}", "points", res));
}

void qxs_api_query_batch(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) { run_batch(s, c, b, 1, o); }

/* ---- rebuilds --------------------------------------------------------------------- */

static void rebuild(qxs_server *s, qxs_coll *c, json_t *b, qxs_reply *o) {
    long long bytes, nlist, train, epochs;
    double minr = c->min_recall, minutes = 5;
    if (qxs_api_int(b, "bytes", 2, QX_MAX_STEPS, (long long)c->bytes, &bytes, o) ||
        qxs_api_int(b, "nlist", 0, QX_MAX_NLIST, (long long)c->nlist, &nlist, o) ||
        qxs_api_int(b, "train_size", 0, 100000000, 0, &train, o) || qxs_api_int(b, "epochs", 0, 100000, 10, &epochs, o))
        return;
    json_t *tm = json_object_get(b, "train_minutes");
    if (tm) {
        if (!json_is_number(tm) || !(json_number_value(tm) > 0 && json_number_value(tm) <= 1440)) {
            qxs_api_fail(o, 422, "'train_minutes' must be a number in (0, 1440]");
            return;
        }
        minutes = json_number_value(tm);
    }
    json_t *mr = json_object_get(b, "min_recall");
    if (mr) {
        if (!json_is_number(mr) || !(json_number_value(mr) >= 0 && json_number_value(mr) <= 1)) {
            qxs_api_fail(o, 422, "'min_recall' must be a number in [0,1]");
            return;
        }
        minr = json_number_value(mr);
    }
    int product = c->fs_product;
    size_t steps = c->fs_steps;
    if (parse_fs_options(b, "", c->quant_kind, c->d, c->distance, (size_t)bytes, &product, &steps, o)) return;
    qxs_rebuild_params p = {.bytes = (size_t)bytes, .nlist = (size_t)nlist, .train_size = (size_t)train,
                            .fs_product = product, .fs_steps = steps, .min_recall = minr, .epochs = (int)epochs,
                            .train_minutes = minutes,
                            .min_used_fraction = NAN, .min_perplexity = NAN, .max_drift_rejected_fraction = NAN,
                            .max_mse_ratio = NAN, .max_recall_drop = NAN};
    json_t *g = json_object_get(b, "gate");
    if (g && !json_is_null(g)) {
        static const char *const keys[] = {"min_used_fraction", "min_perplexity", "max_drift_rejected_fraction",
                                           "max_mse_ratio", "max_recall_drop"};
        double *dst[] = {&p.min_used_fraction, &p.min_perplexity, &p.max_drift_rejected_fraction, &p.max_mse_ratio,
                         &p.max_recall_drop};
        if (!json_is_object(g)) {
            qxs_api_fail(o, 422, "'gate' must be an object of thresholds");
            return;
        }
        const char *k;
        json_t *v;
        json_object_foreach(g, k, v) {
            size_t i = 0;
            while (i < 5 && strcmp(k, keys[i])) i++;
            if (i == 5 || !json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1e6)) {
                qxs_api_fail(o, 422, "gate: unknown key or bad value '%.40s' (min_used_fraction, min_perplexity, "
                             "max_drift_rejected_fraction, max_mse_ratio, max_recall_drop: numbers >= 0)", k);
                return;
            }
            *dst[i] = json_number_value(v);
        }
    }
    uint64_t job = 0;
    int rc = qxs_rebuild_start(s, c, &p, &job);
    if (rc == QX_EEXIST) {
        qxs_api_fail(o, 409, "a rebuild of '%s' is already running (job %llu)", c->name, (unsigned long long)job);
        return;
    }
    if (rc) {
        qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
        return;
    }
    qxs_api_ok(o, json_pack("{s:I, s:s}", "job_id", (json_int_t)job, "status", "queued"));
}

static void get_jobs(qxs_coll *c, const qxs_route *r, qxs_reply *o) {
    pthread_mutex_lock(&c->job_mu);
    json_t *res = NULL;
    if (r->ep == QXS_EP_REBUILD) {
        res = json_array();
        for (qxs_job *j = c->jobs; res && j; j = j->next) json_array_append_new(res, job_json(j));
    } else {
        for (qxs_job *j = c->jobs; j; j = j->next)
            if ((int64_t)j->id == r->id) res = job_json(j);
    }
    pthread_mutex_unlock(&c->job_mu);
    if (!res && r->ep == QXS_EP_REBUILD_JOB)
        qxs_api_fail(o, 404, "rebuild job %lld not found in collection '%s'", (long long)r->id, c->name);
    else
        qxs_api_ok(o, res);
}

/* ---- dispatch ------------------------------------------------------------------- */

void qxs_api_handle(qxs_server *s, const qxs_route *r, const char *method, const char *body, size_t len,
                    qxs_reply *o) {
    memset(o, 0, sizeof *o);
    if (r->ep == QXS_EP_NONE) {
        qxs_api_fail(o, 404, "no such endpoint");
        return;
    }
    if (!qxs_route_allows(r->ep, method, &o->allow)) {
        qxs_api_fail(o, 405, "method %.16s not allowed here (allowed: %s)", method, o->allow);
        return;
    }
    switch (r->ep) {
    case QXS_EP_HEALTHZ:
        qxs_api_ok(o, json_pack("{s:s}", "status", "alive"));
        return;
    case QXS_EP_ROOT:
        qxs_api_ok(o, json_pack("{s:s, s:s}", "title", "qinx - vector search engine", "version", QXS_VERSION));
        return;
    case QXS_EP_READYZ:
        if (atomic_load(&s->ready)) qxs_api_ok(o, json_pack("{s:s}", "status", "ready"));
        else qxs_api_fail(o, 503, "recovering collections");
        return;
    case QXS_EP_METRICS:
        o->raw = qxs_metrics_render(s, &o->raw_len);
        o->content_type = "text/plain; version=0.0.4; charset=utf-8";
        o->status = o->raw ? 200 : 500;
        if (!o->raw) snprintf(o->err, sizeof o->err, "out of memory");
        return;
    default: break;
    }
    if (!atomic_load(&s->ready)) {
        qxs_api_fail(o, 503, "server is recovering collections; retry shortly (see /readyz)");
        return;
    }
    if (r->ep == QXS_EP_COLLECTIONS) {
        char **names;
        size_t n;
        if (qxs_coll_list(s, &names, &n)) {
            qxs_api_fail(o, 500, "%s", qx_last_error());
            return;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            if (arr) json_array_append_new(arr, json_pack("{s:s}", "name", names[i]));
            qx_free(names[i]);
        }
        qx_free(names);
        for (size_t i = 0; arr && i < s->nsharded; i++)
            json_array_append_new(arr, json_pack("{s:s}", "name", qxs_sharded_name(s, i)));
        qxs_api_ok(o, arr ? json_pack("{s:o}", "collections", arr) : NULL);
        return;
    }
    if (!r->name_ok) {
        qxs_api_fail(o, 422, "invalid collection name: names match [A-Za-z0-9_-]{1,64}");
        return;
    }
    if ((r->ep == QXS_EP_POINT || r->ep == QXS_EP_REBUILD_JOB) && !r->id_ok) {
        qxs_api_fail(o, 422, "invalid %s id in the path (%s)", r->ep == QXS_EP_POINT ? "point" : "job",
                     r->ep == QXS_EP_POINT ? "an integer 0..2^63-1 or a UUID" : "a decimal integer 0..2^63-1");
        return;
    }
    const qxs_sharded_coll *sc = qxs_sharded_find(s, r->name);
    if (sc) { /* a read-only collection of its own kind: sharded.c */
        qxs_sharded_handle(s, sc, r, method, body, len, o);
        return;
    }
    if (r->ep == QXS_EP_SNAP_RECOVER || (r->ep == QXS_EP_SNAPSHOTS && strcmp(method, "POST")) ||
        r->ep == QXS_EP_SNAPSHOT) {
        /* no live collection needed: recovery may create it, snapshots outlive it */
        json_t *b = r->ep == QXS_EP_SNAP_RECOVER ? qxs_api_body(body, len, o, 1) : NULL;
        if (r->ep == QXS_EP_SNAP_RECOVER) {
            if (b) qxs_snapshot_recover(s, r->name, b, o);
        } else if (r->ep == QXS_EP_SNAPSHOTS) qxs_snapshot_list(s, r->name, o);
        else if (!strcmp(method, "DELETE")) qxs_snapshot_delete(s, r->name, r->field, o);
        else qxs_snapshot_download(s, r->name, r->field, o);
        json_decref(b);
        return;
    }
    if (r->ep == QXS_EP_EXISTS) {
        qxs_coll *e = qxs_coll_get(s, r->name);
        qxs_api_ok(o, json_pack("{s:b}", "exists", e != NULL));
        qxs_coll_put(e);
        return;
    }
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (r->ep == QXS_EP_COLLECTION && !strcmp(method, "PUT")) {
        json_t *b = qxs_api_body(body, len, o, 1);
        if (b) create_collection(s, r, b, o);
        json_decref(b);
        return;
    }
    if (r->ep == QXS_EP_COLLECTION && !strcmp(method, "DELETE")) {
        int rc = qxs_coll_drop(s, r->name);
        if (rc) qxs_api_fail(o, qxs_api_status(rc), "%s", qx_last_error());
        else qxs_api_ok(o, json_true());
        return;
    }
    qxs_coll *c = qxs_coll_get(s, r->name);
    if (!c) {
        qxs_api_fail(o, 404, "collection '%s' not found", r->name);
        return;
    }
    json_t *b = NULL;
    if (r->ep == QXS_EP_SEARCH && !is_get && !memchr(body, 0, len) && search_fast(s, c, body, len, o)) goto out;
    if (r->ep == QXS_EP_POINTS && !strcmp(method, "PUT") && !memchr(body, 0, len) &&
        qxs_api_upsert_fast(s, c, body, len, o))
        goto out;
    if (!is_get) {
        int required = r->ep != QXS_EP_REBUILD && r->ep != QXS_EP_SNAPSHOTS && strcmp(method, "DELETE") != 0;
        b = qxs_api_body(body, len, o, required);
        if (!b) goto out;
    }
    switch (r->ep) {
    case QXS_EP_COLLECTION:
        if (!strcmp(method, "PATCH")) patch_collection(c, b, o);
        else get_collection(c, o);
        break;
    case QXS_EP_POINTS:
        if (!strcmp(method, "PUT")) qxs_api_upsert(s, c, b, o);
        else qxs_api_retrieve(c, b, o);
        break;
    case QXS_EP_POINT: qxs_api_get_point(c, &r->pid, o); break;
    case QXS_EP_DELETE: qxs_api_delete(s, c, b, o); break;
    case QXS_EP_QUERY: qxs_api_query(s, c, b, o); break;
    case QXS_EP_QUERY_BATCH: qxs_api_query_batch(s, c, b, o); break;
    case QXS_EP_SCROLL: qxs_api_scroll(c, b, o); break;
    case QXS_EP_PCOUNT: qxs_api_count(c, b, o); break;
    case QXS_EP_PAYLOAD: qxs_api_payload(s, c, b, !strcmp(method, "PUT") ? 'o' : 's', o); break;
    case QXS_EP_PAYLOAD_DEL: qxs_api_payload(s, c, b, 'd', o); break;
    case QXS_EP_PAYLOAD_CLEAR: qxs_api_payload(s, c, b, 'c', o); break;
    case QXS_EP_INDEX: qxs_api_index_create(c, b, o); break;
    case QXS_EP_INDEX_FIELD: qxs_api_index_drop(c, r->field, o); break;
    case QXS_EP_SNAPSHOTS: qxs_snapshot_create(s, c, o); break;
    case QXS_EP_SEARCH: {
        size_t budget = QXS_MAX_REPLY_VALUES;
        json_t *res = search_one(s, c, b, o, "search", &budget, 0);
        if (res) qxs_api_ok(o, res);
        break;
    }
    case QXS_EP_SEARCH_BATCH: search_batch(s, c, b, o); break;
    case QXS_EP_REBUILD:
        if (is_get) get_jobs(c, r, o);
        else rebuild(s, c, b, o);
        break;
    case QXS_EP_REBUILD_JOB: get_jobs(c, r, o); break;
    default: qxs_api_fail(o, 404, "no such endpoint"); break;
    }
out:
    json_decref(b);
    qxs_coll_put(c);
}
