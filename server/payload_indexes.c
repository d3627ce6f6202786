/* server/payload_indexes.c — the payload indexes of one collection
 * (payload_indexes.h).
 *
 * Decisions:
 * 1. Indexes are not persisted, only their definitions (indexes.json):
 *    they are rebuilt from the payloads when the collection is first used
 *    (cheap next to reading the vectors).
 * 2. The store's hook keeps them current; it runs under the collection's
 *    write lock, as do the swaps of the index array on create/drop, so the
 *    hook never sees an array being replaced.
 * 3. Building an index holds the collection's writer mutex, so no write
 *    slips between the scan of the stored payloads and the swap.
 * 4. Creating an index over stored payloads holding a value of another type
 *    is refused, naming the point: an index never disagrees with the
 *    payloads it stands for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "payload_index.h"
#include "payload_indexes.h"

#define INDEXES "indexes.json"

struct qxs_pidxset {
    pthread_rwlock_t lock;
    pthread_mutex_t rmw; /* payload read-modify-writes of this collection, one at a time */
    qxs_pindex **v;
    size_t n;
};

static pthread_mutex_t attach_mu = PTHREAD_MUTEX_INITIALIZER;

void qxs_pidxset_free(qxs_pidxset *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) qxs_pindex_free(p->v[i]);
    qx_free(p->v);
    pthread_rwlock_destroy(&p->lock);
    pthread_mutex_destroy(&p->rmw);
    qx_free(p);
}

void qxs_pidx_rdlock(qxs_pidxset *p) { pthread_rwlock_rdlock(&p->lock); }
void qxs_pidx_unlock(qxs_pidxset *p) { pthread_rwlock_unlock(&p->lock); }
void qxs_pidx_rmw_lock(qxs_pidxset *p) { pthread_mutex_lock(&p->rmw); }
void qxs_pidx_rmw_unlock(qxs_pidxset *p) { pthread_mutex_unlock(&p->rmw); }

int qxs_pidx_check(qxs_pidxset *p, const json_t *payload, char *err, size_t errcap) {
    for (size_t k = 0; k < p->n; k++)
        if (qxs_pindex_check(p->v[k], payload, err, errcap)) return -1;
    return 0;
}

static void bind_one(void *ctx, qxs_cond *c) {
    const qxs_pidxset *p = ctx;
    c->pidx = NULL;
    for (size_t k = 0; k < p->n; k++)
        if (qxs_pindex_answers(p->v[k], c)) {
            c->pidx = p->v[k];
            return;
        }
}

void qxs_pidx_bind(qxs_pidxset *p, qxs_filter *f) { qxs_filter_walk(f, bind_one, p); }

/* under the collection's write lock */
static void hook(void *ctx, int op, const qxs_pid *id, int64_t rowkey, const uint8_t *payload, uint32_t plen) {
    (void)id;
    qxs_pidxset *p = ctx;
    if (!p->n) return;
    json_t *j = op == QXS_HOOK_PUT && plen ? json_loadb((const char *)payload, plen, 0, NULL) : NULL;
    for (size_t k = 0; k < p->n; k++) {
        if (op == QXS_HOOK_DEL) qxs_pindex_remove(p->v[k], rowkey);
        else if (qxs_pindex_set(p->v[k], rowkey, j))
            qxs_log(QXS_LOG_ERROR, "payload index '%s': out of memory; it misses a point", qxs_pindex_field(p->v[k]));
    }
    json_decref(j);
}

typedef struct build_ctx {
    qxs_pindex *ix;
    int rc;
} build_ctx;

static int build_one(void *ctx, const qxs_pid *id, int64_t key, const uint8_t *bytes, uint32_t len) {
    build_ctx *b = ctx;
    if (!len) return 0;
    json_t *j = json_loadb((const char *)bytes, len, 0, NULL);
    if (!j) return 0;
    char err[300];
    if (qxs_pindex_check(b->ix, j, err, sizeof err)) {
        char t[QXS_PID_STRLEN];
        b->rc = qx_error_set(QX_EINVAL, "point %s: %s", qxs_pid_format(id, t), err);
    } else if (qxs_pindex_set(b->ix, key, j)) {
        b->rc = QX_ENOMEM;
    }
    json_decref(j);
    return b->rc;
}

/* A new index over every stored payload (caller holds c->wmu). */
static int build(qxs_coll *c, const char *field, int type, qxs_pindex **out) {
    char err[300];
    build_ctx b = {NULL, 0};
    if (qxs_pindex_new(&b.ix, field, type, err, sizeof err)) return qx_error_set(QX_EINVAL, "field_name: %s", err);
    qxs_coll_foreach(c, build_one, &b);
    if (b.rc) {
        qxs_pindex_free(b.ix);
        return b.rc;
    }
    *out = b.ix;
    return 0;
}

static int defs_path(const qxs_coll *c, char *path, size_t cap) {
    if (snprintf(path, cap, "%s/%s", c->dir, INDEXES) >= (int)cap) return qx_error_set(QX_EINVAL, "path too long");
    return 0;
}

static int save_defs(const qxs_coll *c, qxs_pindex *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "field", qxs_pindex_field(v[i]), "type",
                                           qxs_pindex_type_name(qxs_pindex_type(v[i]))));
    char *txt = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    json_decref(a);
    if (!txt) return qx_error_set(QX_ENOMEM, "index definitions");
    char path[PATH_MAX];
    int rc = defs_path(c, path, sizeof path);
    if (!rc) rc = qx_write_atomic(path, txt, strlen(txt));
    qx_free(txt);
    return rc;
}

static int load_defs(qxs_coll *c, qxs_pidxset *p) {
    char path[PATH_MAX];
    int rc = defs_path(c, path, sizeof path);
    if (rc || access(path, F_OK) != 0) return rc;
    json_error_t je;
    json_t *a = json_load_file(path, 0, &je);
    if (!json_is_array(a)) {
        json_decref(a);
        return qx_error_set(QX_EFORMAT, "%s: not a JSON array of index definitions", path);
    }
    size_t i;
    json_t *d;
    json_array_foreach(a, i, d) {
        const char *field = json_string_value(json_object_get(d, "field"));
        const char *tn = json_string_value(json_object_get(d, "type"));
        int type = tn ? qxs_pindex_type_parse(tn) : 0;
        qxs_pindex *ix = NULL, **v;
        if (!field || !type) rc = qx_error_set(QX_EFORMAT, "%s: entry %zu is not {field, type}", path, i);
        else if (!(rc = build(c, field, type, &ix))) {
            if (!(v = qx_realloc(p->v, (p->n + 1) * sizeof *v))) {
                qxs_pindex_free(ix);
                rc = qx_error_set(QX_ENOMEM, "index list");
            } else {
                p->v = v;
                p->v[p->n++] = ix;
            }
        }
        if (rc) break;
    }
    json_decref(a);
    return rc;
}

qxs_pidxset *qxs_pidx_get(qxs_coll *c) {
    pthread_mutex_lock(&attach_mu);
    qxs_pidxset *p = c->pidxs;
    if (!p && (p = qx_calloc(1, sizeof *p)) != NULL) {
        pthread_rwlock_init(&p->lock, NULL);
        pthread_mutex_init(&p->rmw, NULL);
        pthread_mutex_lock(&c->wmu); /* no write between the build and the hook */
        int rc = load_defs(c, p);
        if (!rc) {
            qxs_coll_set_hook_locked(c, hook, p);
            c->pidxs = p;
        }
        pthread_mutex_unlock(&c->wmu);
        if (rc) {
            qxs_log(QXS_LOG_ERROR, "collection %s: payload indexes: %s", c->name, qx_last_error());
            qxs_pidxset_free(p);
            p = NULL;
        }
    } else if (!p) {
        qx_error_set(QX_ENOMEM, "payload index set");
    }
    pthread_mutex_unlock(&attach_mu);
    return p;
}

/* Replace the array (under the set's write lock and c->wmu). */
static void swap(qxs_coll *c, qxs_pidxset *p, qxs_pindex **v, size_t n) {
    pthread_rwlock_wrlock(&c->rw);
    qxs_pindex **prev = p->v;
    p->v = v;
    p->n = n;
    pthread_rwlock_unlock(&c->rw);
    qx_free(prev);
}

int qxs_pidx_create(qxs_coll *c, const char *field, int type) {
    qxs_pidxset *p = qxs_pidx_get(c);
    if (!p) return QX_ENOMEM;
    pthread_rwlock_wrlock(&p->lock);
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    size_t at = p->n;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(qxs_pindex_field(p->v[i]), field)) at = i;
    if (at < p->n && qxs_pindex_type(p->v[at]) == type) goto out; /* already there: idempotent */
    qxs_pindex *ix = NULL, *old = NULL;
    if ((rc = build(c, field, type, &ix))) goto out;
    qxs_pindex **v = qx_malloc((p->n + 1) * sizeof *v);
    if (!v) {
        qxs_pindex_free(ix);
        rc = qx_error_set(QX_ENOMEM, "index list");
        goto out;
    }
    if (p->n) memcpy(v, p->v, p->n * sizeof *v); /* p->v is NULL while there is none */
    size_t nn = p->n;
    if (at < p->n) old = v[at], v[at] = ix;
    else v[nn++] = ix;
    if ((rc = save_defs(c, v, nn))) {
        qxs_pindex_free(ix);
        qx_free(v);
        goto out;
    }
    swap(c, p, v, nn);
    qxs_pindex_free(old);
out:
    pthread_mutex_unlock(&c->wmu);
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int qxs_pidx_drop(qxs_coll *c, const char *field) {
    qxs_pidxset *p = qxs_pidx_get(c);
    if (!p) return QX_ENOMEM;
    pthread_rwlock_wrlock(&p->lock);
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    size_t at = p->n, nn = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(qxs_pindex_field(p->v[i]), field)) at = i;
    qxs_pindex **v = NULL;
    if (at == p->n) rc = qx_error_set(QX_ENOTFOUND, "no payload index on field '%.100s'", field);
    else if (!(v = qx_malloc((p->n ? p->n : 1) * sizeof *v))) rc = qx_error_set(QX_ENOMEM, "index list");
    for (size_t i = 0; !rc && i < p->n; i++)
        if (i != at) v[nn++] = p->v[i];
    if (!rc && (rc = save_defs(c, v, nn))) qx_free(v);
    if (!rc) {
        qxs_pindex *old = p->v[at];
        swap(c, p, v, nn);
        qxs_pindex_free(old);
    }
    pthread_mutex_unlock(&c->wmu);
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

json_t *qxs_pidx_schema(qxs_pidxset *p, size_t *bytes) {
    json_t *o = json_object();
    *bytes = 0;
    for (size_t i = 0; o && i < p->n; i++) {
        size_t b = qxs_pindex_bytes(p->v[i]);
        *bytes += b;
        json_object_set_new(o, qxs_pindex_field(p->v[i]),
                            json_pack("{s:s, s:I, s:I}", "data_type", qxs_pindex_type_name(qxs_pindex_type(p->v[i])),
                                      "points", (json_int_t)qxs_pindex_points(p->v[i]), "bytes", (json_int_t)b));
    }
    return o;
}
