/* server/points_write.c — a collection's payload writes and payload indexes:
 * set/overwrite/clear payloads (one META log record), creating and dropping
 * payload indexes (indexes.json), and rebuilding them at start-up.
 *
 * Decisions:
 * 1. Payload operations are read-modify-write computed by the API layer;
 *    here the whole new payloads are checked against every payload index,
 *    then logged in one record, then applied: a bad value refuses the whole
 *    request before anything is written.
 * 2. Indexes are not persisted, only their definitions: start-up rebuilds
 *    them from the payloads (cheap next to reading the vectors).
 * 3. Creating an index over existing payloads that hold a value of another
 *    type is refused, naming the point; the index never disagrees with the
 *    payloads it stands for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "payload_index.h"
#include "srv.h"

#define INDEXES "indexes.json"

int qxs__coll_pidx_check(const qxs_coll *c, const json_t *payload, char *err, size_t errcap) {
    for (size_t k = 0; k < c->npidx; k++)
        if (qxs_pindex_check(c->pidx[k], payload, err, errcap)) return -1;
    return 0;
}

void qxs__coll_pidx_set(qxs_coll *c, int64_t key, const json_t *payload) {
    for (size_t k = 0; k < c->npidx; k++)
        if (qxs_pindex_set(c->pidx[k], key, payload))
            qxs_log(QXS_LOG_ERROR, "collection %s: payload index '%s' out of memory; it misses a point",
                    c->name, qxs_pindex_field(c->pidx[k]));
}

int qxs_coll_set_payloads(qxs_server *s, qxs_coll *c, const int64_t *keys, json_t *const *payloads, size_t n,
                          uint64_t *lsn_out) {
    if (atomic_load(&c->failed)) return qx__fail(QX_EIO, "collection is read-only after an I/O error");
    qxs_meta_ent *e = qx__calloc(n ? n : 1, sizeof *e);
    char **txt = qx__calloc(n ? n : 1, sizeof *txt);
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = e && txt ? 0 : qx__fail(QX_ENOMEM, "payload update");
    char err[300];
    pthread_mutex_lock(&c->wmu);
    for (size_t i = 0; !rc && i < n; i++) {
        if (payloads[i] && qxs__coll_pidx_check(c, payloads[i], err, sizeof err)) {
            rc = qx__fail(QX_EINVAL, "%s", err);
            break;
        }
        size_t len = 0;
        if (payloads[i] && json_object_size(payloads[i])) {
            txt[i] = json_dumps(payloads[i], JSON_COMPACT);
            if (!txt[i]) rc = qx__fail(QX_ENOMEM, "payload");
            else if ((len = strlen(txt[i])) > QXS_MAX_PAYLOAD)
                rc = qx__fail(QX_ELIMIT, "payload of %zu bytes above the limit of %u bytes", len, QXS_MAX_PAYLOAD);
        }
        e[i] = (qxs_meta_ent){.key = keys[i], .pid = qxs_pmeta_pid(&c->pm, keys[i]), .len = (uint32_t)len,
                              .payload = txt[i]};
    }
    if (!rc) rc = qxs_meta_encode(e, n, &body, &blen);
    if (!rc && blen > QXS_WAL_MAX_RECORD) rc = qx__fail(QX_ELIMIT, "payload update above the 1 GiB record limit");
    if (!rc && atomic_load(&c->dropped)) rc = qx__fail(QX_ENOTFOUND, "collection '%s' was deleted", c->name);
    uint64_t lsn = c->lsn + 1;
    if (!rc) {
        rc = qxs_wal_append_meta(&c->wal, lsn, body, (uint32_t)blen);
        if (rc && c->wal.failed) atomic_store(&c->failed, 1);
    }
    if (!rc) {
        c->lsn = lsn;
        pthread_rwlock_wrlock(&c->rw);
        rc = qxs_pmeta_apply(&c->pm, e, n);
        for (size_t i = 0; !rc && i < n; i++) qxs__coll_pidx_set(c, keys[i], payloads[i]);
        pthread_rwlock_unlock(&c->rw);
        qxs__coll_maybe_checkpoint(c);
    }
    pthread_mutex_unlock(&c->wmu);
    if (!rc && n) {
        rc = qxs_wal_sync(&c->wal, lsn);
        atomic_fetch_add(&s->m.wal_fsyncs, 1);
        if (rc) atomic_store(&c->failed, 1);
    }
    if (lsn_out) *lsn_out = lsn;
    for (size_t i = 0; txt && i < n; i++) qx__free(txt[i]);
    qx__free(txt);
    qx__free(e);
    qx__free(body);
    return rc;
}

/* ---- index definitions ------------------------------------------------------ */

static int save_defs(const qxs_coll *c, qxs_pindex *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "field", qxs_pindex_field(v[i]), "type",
                                           qxs_pindex_type_name(qxs_pindex_type(v[i]))));
    char *txt = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    json_decref(a);
    if (!txt) return qx__fail(QX_ENOMEM, "index definitions");
    char path[PATH_MAX];
    int rc = snprintf(path, sizeof path, "%s/%s", c->dir, INDEXES) >= (int)sizeof path
                 ? qx__fail(QX_EINVAL, "path too long")
                 : qxs_write_file_atomic(path, txt, strlen(txt));
    qx__free(txt);
    return rc;
}

typedef struct build_ctx {
    qxs_coll *c;
    qxs_pindex *ix;
    int rc;
    char err[300];
} build_ctx;

static void build_one(void *ctx, int64_t key, const char *bytes, uint32_t len) {
    build_ctx *b = ctx;
    if (b->rc) return;
    json_t *j = json_loadb(bytes, len, 0, NULL);
    if (!j) return;
    if (qxs_pindex_check(b->ix, j, b->err, sizeof b->err)) {
        char id[QXS_PID_TEXT_MAX];
        qxs_pid p = qxs_pmeta_pid(&b->c->pm, key);
        qxs_pid_format(&p, id);
        b->rc = qx__fail(QX_EINVAL, "point %s: %s", id, b->err);
    } else if (qxs_pindex_set(b->ix, key, j)) {
        b->rc = QX_ENOMEM;
    }
    json_decref(j);
}

/* A new index of field over every payload (caller holds wmu or is alone). */
static int build(qxs_coll *c, const char *field, int type, qxs_pindex **out) {
    char err[300];
    build_ctx b = {.c = c};
    if (qxs_pindex_new(&b.ix, field, type, err, sizeof err)) return qx__fail(QX_EINVAL, "field_name: %s", err);
    pthread_rwlock_rdlock(&c->rw);
    qxs_pmeta_each_payload(&c->pm, build_one, &b);
    pthread_rwlock_unlock(&c->rw);
    if (b.rc) {
        qxs_pindex_free(b.ix);
        return b.rc;
    }
    *out = b.ix;
    return 0;
}

int qxs_coll_index_create(qxs_coll *c, const char *field, int type) {
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    size_t at = c->npidx;
    for (size_t i = 0; i < c->npidx; i++)
        if (!strcmp(qxs_pindex_field(c->pidx[i]), field)) at = i;
    if (at < c->npidx && qxs_pindex_type(c->pidx[at]) == type) goto out; /* already there: idempotent */
    qxs_pindex *ix = NULL;
    if ((rc = build(c, field, type, &ix))) goto out;
    qxs_pindex **v = qx__malloc((c->npidx + 1) * sizeof *v);
    if (!v) {
        qxs_pindex_free(ix);
        rc = qx__fail(QX_ENOMEM, "index list");
        goto out;
    }
    memcpy(v, c->pidx, c->npidx * sizeof *v);
    size_t nn = c->npidx;
    qxs_pindex *old = NULL;
    if (at < c->npidx) old = v[at], v[at] = ix;
    else v[nn++] = ix;
    if ((rc = save_defs(c, v, nn))) {
        qxs_pindex_free(ix);
        qx__free(v);
        goto out;
    }
    pthread_rwlock_wrlock(&c->rw);
    qxs_pindex **prev = c->pidx;
    c->pidx = v;
    c->npidx = nn;
    pthread_rwlock_unlock(&c->rw);
    qx__free(prev);
    qxs_pindex_free(old);
out:
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

int qxs_coll_index_drop(qxs_coll *c, const char *field) {
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    size_t at = c->npidx;
    for (size_t i = 0; i < c->npidx; i++)
        if (!strcmp(qxs_pindex_field(c->pidx[i]), field)) at = i;
    if (at == c->npidx) {
        rc = qx__fail(QX_ENOTFOUND, "no payload index on field '%.100s'", field);
        goto out;
    }
    qxs_pindex **v = qx__malloc((c->npidx ? c->npidx : 1) * sizeof *v);
    if (!v) {
        rc = qx__fail(QX_ENOMEM, "index list");
        goto out;
    }
    size_t nn = 0;
    for (size_t i = 0; i < c->npidx; i++)
        if (i != at) v[nn++] = c->pidx[i];
    if ((rc = save_defs(c, v, nn))) {
        qx__free(v);
        goto out;
    }
    qxs_pindex *old = c->pidx[at];
    pthread_rwlock_wrlock(&c->rw);
    qxs_pindex **prev = c->pidx;
    c->pidx = v;
    c->npidx = nn;
    pthread_rwlock_unlock(&c->rw);
    qx__free(prev);
    qxs_pindex_free(old);
out:
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

typedef struct orphan_ctx {
    qxs_coll *c;
    int64_t *keys;
    size_t n, cap;
} orphan_ctx;

static void find_orphan(void *ctx, int64_t key, const char *b, uint32_t len) {
    (void)b, (void)len;
    orphan_ctx *o = ctx;
    if (qxs_store_get(&o->c->store, key)) return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int64_t *k = qx__realloc(o->keys, cap * sizeof *k);
        if (!k) return;
        o->keys = k, o->cap = cap;
    }
    o->keys[o->n++] = key;
}

int qxs__coll_load_indexes(qxs_coll *c) {
    /* payloads of points whose upsert record was torn off the log's tail */
    orphan_ctx o = {c, NULL, 0, 0};
    qxs_pmeta_each_payload(&c->pm, find_orphan, &o);
    for (size_t i = 0; i < o.n; i++) qxs_pmeta_forget(&c->pm, o.keys[i]);
    qx__free(o.keys);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", c->dir, INDEXES) >= (int)sizeof path)
        return qx__fail(QX_EINVAL, "path too long");
    if (access(path, F_OK) != 0) return 0;
    json_error_t je;
    json_t *a = json_load_file(path, 0, &je);
    if (!json_is_array(a)) {
        json_decref(a);
        return qx__fail(QX_EFORMAT, "%s: not a JSON array of index definitions", path);
    }
    size_t i;
    json_t *d;
    int rc = 0;
    json_array_foreach(a, i, d) {
        const char *field = json_string_value(json_object_get(d, "field"));
        int type = qxs_pindex_type_parse(json_string_value(json_object_get(d, "type")) ? json_string_value(json_object_get(d, "type")) : "");
        qxs_pindex *ix;
        if (!field || !type) rc = qx__fail(QX_EFORMAT, "%s: entry %zu is not {field, type}", path, i);
        else if (!(rc = build(c, field, type, &ix))) {
            qxs_pindex **v = qx__realloc(c->pidx, (c->npidx + 1) * sizeof *v);
            if (!v) {
                qxs_pindex_free(ix);
                rc = qx__fail(QX_ENOMEM, "index list");
            } else {
                c->pidx = v;
                c->pidx[c->npidx++] = ix;
            }
        }
        if (rc) break;
    }
    json_decref(a);
    return rc;
}
