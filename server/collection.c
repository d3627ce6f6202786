/* server/collection.c — collections: creation, recovery, writes, search,
 * checkpoints, and the registry that maps names to them.
 *
 * On disk, <data>/collections/<name>/ holds
 *   meta.json     parameters (written once, atomically)
 *   snapshot.bin  raw ids + vectors at some lsn (store.c)
 *   index.qx      the IVF index (qx_ivf_save) — only once a rebuild succeeded
 *   wal.log       records after the snapshot (wal.c)
 *   report.json   the last rebuild/gate report
 * Decisions:
 * 1. Every write is: take wmu, append the WAL record, apply it to the store
 *    (and to the index when there is one) under the write side of rw, release
 *    wmu, then wait for the group-commit fsync before replying. WAL order is
 *    apply order, so replay reproduces the state exactly.
 * 2. Upserts and deletes are idempotent (last writer wins), so replaying a
 *    log suffix over an index file that already contains part of it (crash
 *    between saving index.qx and snapshot.bin) gives the same state.
 * 3. A checkpoint (after the log grows past QXS_WAL_CHECKPOINT_BYTES, after a
 *    rebuild swap and at shutdown) saves index.qx, then snapshot.bin, then
 *    resets the log; it holds wmu (writers wait) but never rw (searches go on).
 * 4. Collections are reference counted: DELETE unlinks the name at once; the
 *    memory goes when the last in-flight request lets go.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "route.h"
#include "srv.h"

#define META "meta.json"
#define SNAP "snapshot.bin"
#define INDEX "index.qx"
#define WALF "wal.log"
#define REPORT "report.json"
#define PMETA "meta.bin" /* point ids and payloads at the snapshot's lsn (points_meta.c) */
#define QXS_INDEX_CHUNK 64

const char *qxs_distance_name(qxs_distance d) {
    return d == QXS_COSINE ? "Cosine" : d == QXS_DOT ? "Dot" : "Euclid";
}

static int path_in(char *out, size_t cap, const char *dir, const char *file) {
    if (snprintf(out, cap, "%s/%s", dir, file) >= (int)cap)
        return qx_error_set(QX_EINVAL, "path too long: %s/%s", dir, file);
    return 0;
}

static void coll_free(qxs_coll *c) {
    if (!c) return;
    qxs_wal_close(&c->wal);
    qxs_store_free(&c->store);
    qxs_pmeta_free(&c->pm);
    qxs_pidxset_free(c->pidxs);
    qx_ivf_free(c->ivf);
    qx_free(c->touched);
    for (qxs_job *j = c->jobs; j;) {
        qxs_job *nx = j->next;
        qx_free(j->report);
        qx_free(j);
        j = nx;
    }
    qx_free(c->last_report);
    pthread_mutex_destroy(&c->wmu);
    pthread_rwlock_destroy(&c->rw);
    pthread_mutex_destroy(&c->job_mu);
    qx_free(c);
}

static qxs_coll *coll_alloc(const char *name, const char *dir, const qxs_coll_params *p) {
    qxs_coll *c = qx_calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->d = p->d;
    c->distance = p->distance;
    c->quant_kind = p->quant_kind;
    c->bytes = p->bytes;
    c->nlist = p->nlist;
    c->min_recall = p->min_recall;
    c->refs = 1; /* the registry's reference */
    c->wal.fd = -1;
    pthread_mutex_init(&c->wmu, NULL);
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* Searches hold the read side continuously under load; without writer
     * preference an upsert could wait forever. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->rw, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&c->job_mu, NULL);
    qxs_store_init(&c->store, p->d);
    qxs_pmeta_init(&c->pm);
    return c;
}

void qxs_coll_put(qxs_coll *c) {
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) coll_free(c);
}

qxs_coll *qxs_coll_get(qxs_server *s, const char *name) {
    qxs_coll *found = NULL;
    pthread_rwlock_rdlock(&s->reg_rw);
    for (size_t i = 0; i < s->ncolls; i++) {
        if (!strcmp(s->colls[i]->name, name)) {
            found = s->colls[i];
            atomic_fetch_add(&found->refs, 1);
            break;
        }
    }
    pthread_rwlock_unlock(&s->reg_rw);
    return found;
}

int qxs_coll_list(qxs_server *s, char ***names, size_t *n) {
    pthread_rwlock_rdlock(&s->reg_rw);
    char **v = qx_calloc(s->ncolls ? s->ncolls : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < s->ncolls; i++)
        if ((v[k] = qx_strdup(s->colls[i]->name))) k++;
    pthread_rwlock_unlock(&s->reg_rw);
    if (!v) return qx_error_set(QX_ENOMEM, "collection list");
    *names = v;
    *n = k;
    return 0;
}

static int registry_add(qxs_server *s, qxs_coll *c) {
    if (s->ncolls == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        qxs_coll **v = qx_realloc(s->colls, cap * sizeof *v);
        if (!v) return qx_error_set(QX_ENOMEM, "registry");
        s->colls = v;
        s->cap = cap;
    }
    s->colls[s->ncolls++] = c;
    return 0;
}

/* ---- metadata ------------------------------------------------------------ */

static char *meta_json(const qxs_coll *c) {
    json_t *o = json_pack("{s:s, s:{s:I, s:s}, s:{s:s, s:I, s:I}, s:{s:f}, s:f}", "name", c->name,
                          "vectors", "size", (json_int_t)c->d, "distance", qxs_distance_name(c->distance),
                          "quantizer", "kind", qx_quantizer_kind_name(c->quant_kind), "bytes",
                          (json_int_t)c->bytes, "nlist", (json_int_t)c->nlist, "gate", "min_recall",
                          c->min_recall, "created", c->created);
    if (!o) return NULL;
    char *txt = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return txt;
}

static int meta_parse(const char *path, qxs_coll_params *p, double *created) {
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (!o) return qx_error_set(QX_EFORMAT, "%s: %s (line %d)", path, e.text, e.line);
    json_int_t d = 0, bytes = 0, nlist = 0;
    const char *dist = NULL, *kind = "rq";
    double minr = 0, cr = 0;
    int rc = json_unpack_ex(o, &e, 0, "{s:{s:I, s:s}, s?:{s?:s, s?:I, s?:I}, s?:{s?:F}, s?:F}",
                            "vectors", "size", &d, "distance", &dist, "quantizer", "kind", &kind,
                            "bytes", &bytes, "nlist", &nlist, "gate", "min_recall", &minr,
                            "created", &cr);
    int out = 0;
    if (rc || d < 1 || d > QX_MAX_DIM || bytes < 1 || bytes > QX_MAX_STEPS || nlist < 0 ||
        nlist > QX_MAX_NLIST) {
        out = qx_error_set(QX_EFORMAT, "%s: bad metadata (%s)", path, rc ? e.text : "value out of range");
    } else {
        p->d = (size_t)d;
        p->distance = !strcmp(dist, "Cosine") ? QXS_COSINE : !strcmp(dist, "Dot") ? QXS_DOT : QXS_EUCLID;
        p->quant_kind = !strcmp(kind, "qinco") ? QX_QUANT_QINCO : QX_QUANT_RQ;
        p->bytes = (size_t)bytes;
        p->nlist = (size_t)nlist;
        p->min_recall = minr;
        *created = cr;
    }
    json_decref(o);
    return out;
}

/* ---- recovery ------------------------------------------------------------- */

typedef struct replay_ctx {
    qxs_coll *c;
    uint64_t snap_lsn;
    size_t applied, skipped;
    float *scratch_ids;
} replay_ctx;

static int index_apply(qxs_coll *c, int type, const int64_t *ids, const float *x, size_t n) {
    if (!c->ivf || n == 0) return 0;
    if (type == QXS_WAL_UPSERT) return qx_ivf_add(c->ivf, x, ids, n);
    return qx_ivf_remove(c->ivf, ids, n, NULL);
}

static int replay_one(void *ctx, const qxs_wal_rec *r) {
    replay_ctx *rc = ctx;
    qxs_coll *c = rc->c;
    if (r->lsn <= rc->snap_lsn) {
        rc->skipped++;
        return 0;
    }
    if (r->type == QXS_WAL_META) {
        qxs_meta_ent *e;
        size_t ne;
        int err = qxs_meta_decode(r->ids, r->n, &e, &ne);
        if (!err) err = qxs_pmeta_apply(&c->pm, e, ne);
        if (!err) qx_free(e);
        if (err) return err;
        if (r->lsn > c->lsn) c->lsn = r->lsn;
        rc->applied++;
        return 0;
    }
    /* The record's arrays are unaligned inside the file buffer: copy. */
    size_t n = r->n, vb = r->type == QXS_WAL_UPSERT ? n * c->d * sizeof(float) : 0;
    int64_t *ids = qx_malloc(n * 8 + 1);
    float *x = vb ? qx_aligned_alloc(vb) : NULL;
    if (!ids || (vb && !x)) {
        qx_free(ids);
        qx_aligned_free(x);
        return qx_error_set(QX_ENOMEM, "replay of %zu points", n);
    }
    memcpy(ids, r->ids, n * 8);
    if (vb) memcpy(x, r->vecs, vb);
    int err = 0;
    for (size_t i = 0; i < n && !err; i++)
        if (ids[i] < 0) err = qx_error_set(QX_EFORMAT, "negative id in WAL record lsn %llu", (unsigned long long)r->lsn);
    if (!err) {
        if (r->type == QXS_WAL_UPSERT) err = qxs_store_upsert(&c->store, ids, x, n);
        else {
            qxs_store_delete(&c->store, ids, n, NULL);
            for (size_t i = 0; i < n; i++) qxs_pmeta_forget(&c->pm, ids[i]);
        }
    }
    if (!err) err = index_apply(c, r->type, ids, x, n);
    qx_free(ids);
    qx_aligned_free(x);
    if (err) return err;
    if (r->lsn > c->lsn) c->lsn = r->lsn;
    rc->applied++;
    return 0;
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
        int64_t *k = qx_realloc(o->keys, cap * sizeof *k);
        if (!k) return;
        o->keys = k, o->cap = cap;
    }
    o->keys[o->n++] = key;
}

/* Payloads of points whose upsert record was torn off the log's tail. */
static void prune_orphans(qxs_coll *c) {
    orphan_ctx o = {c, NULL, 0, 0};
    qxs_pmeta_each_payload(&c->pm, find_orphan, &o);
    for (size_t i = 0; i < o.n; i++) qxs_pmeta_forget(&c->pm, o.keys[i]);
    qx_free(o.keys);
}

static void refresh_index_bytes(qxs_coll *c) {
    qx_ivf_info info;
    c->ivf_bytes = c->ivf && !qx_ivf_get_info(c->ivf, &info) ? info.bytes : 0;
}

static int coll_open(qxs_server *s, const char *name, qxs_coll **out) {
    char dir[PATH_MAX], path[PATH_MAX];
    int rc;
    if (snprintf(dir, sizeof dir, "%s/collections/%s", s->cfg.data, name) >= (int)sizeof dir)
        return qx_error_set(QX_EINVAL, "path too long");
    qxs_coll_params p;
    double created = 0;
    if ((rc = path_in(path, sizeof path, dir, META)) || (rc = meta_parse(path, &p, &created))) return rc;
    qxs_coll *c = coll_alloc(name, dir, &p);
    if (!c) return qx_error_set(QX_ENOMEM, "collection");
    c->created = created;
    uint64_t snap_lsn = 0;
    double t0 = qx_now();
    path_in(path, sizeof path, dir, SNAP);
    rc = qxs_store_load(&c->store, path, &snap_lsn);
    if (rc == QX_ENOTFOUND) rc = 0;
    if (rc) goto fail;
    c->lsn = snap_lsn;
    uint64_t meta_lsn = 0;
    path_in(path, sizeof path, dir, PMETA);
    rc = qxs_pmeta_load(&c->pm, path, &meta_lsn);
    if (rc == QX_ENOTFOUND) rc = 0;
    if (rc) goto fail;
    path_in(path, sizeof path, dir, INDEX);
    if (access(path, F_OK) == 0) {
        if ((rc = qx_ivf_load(path, &c->ivf))) goto fail;
        c->ivf_gen = atomic_fetch_add(&s->ivf_gen, 1) + 1;
    }
    path_in(path, sizeof path, dir, REPORT);
    FILE *f = fopen(path, "rb");
    if (f) {
        char *buf = qx_malloc(1 << 20);
        if (buf) {
            size_t n = fread(buf, 1, (1 << 20) - 1, f);
            buf[n] = 0;
            c->last_report = buf;
        }
        fclose(f);
    }
    replay_ctx rctx = {.c = c, .snap_lsn = snap_lsn};
    uint64_t dropped = 0;
    path_in(path, sizeof path, dir, WALF);
    if ((rc = qxs_wal_open(&c->wal, path, c->d, replay_one, &rctx, &dropped))) goto fail;
    atomic_store(&c->wal.written_lsn, c->lsn);
    atomic_store(&c->wal.synced_lsn, c->lsn);
    if (dropped)
        qxs_log(QXS_LOG_WARN, "collection %s: ignored a torn or corrupt write-ahead log tail of %llu bytes "
                              "(an unacknowledged write cut short by a crash)",
                name, (unsigned long long)dropped);
    prune_orphans(c);
    refresh_index_bytes(c);
    qxs_log(QXS_LOG_INFO, "collection %s: recovered %zu points (snapshot lsn %llu, %zu log records replayed, "
                          "%s) in %.3f s",
            name, c->store.n, (unsigned long long)snap_lsn, rctx.applied,
            c->ivf ? "IVF index loaded" : "exact search until the first rebuild", qx_now() - t0);
    *out = c;
    return 0;
fail:
    coll_free(c);
    return rc;
}

int qxs_registry_load(qxs_server *s) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/collections", s->cfg.data) >= (int)sizeof path)
        return qx_error_set(QX_EINVAL, "data directory path too long");
    if (mkdir(s->cfg.data, 0755) != 0 && errno != EEXIST)
        return qx_error_set(QX_EIO, "mkdir %s: %s", s->cfg.data, strerror(errno));
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return qx_error_set(QX_EIO, "mkdir %s: %s", path, strerror(errno));
    DIR *d = opendir(path);
    if (!d) return qx_error_set(QX_EIO, "opendir %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        /* temp dirs of an interrupted create or drop start with '.', which
         * the name alphabet excludes */
        if (!qxs_name_valid(e->d_name, strlen(e->d_name))) {
            if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char junk[PATH_MAX + 300];
                snprintf(junk, sizeof junk, "%s/%s", path, e->d_name);
                DIR *jd = opendir(junk);
                struct dirent *je;
                while (jd && (je = readdir(jd)) != NULL) {
                    char f[PATH_MAX + 600];
                    snprintf(f, sizeof f, "%s/%s", junk, je->d_name);
                    if (je->d_name[0] != '.') unlink(f);
                }
                if (jd) closedir(jd);
                rmdir(junk);
            }
            continue;
        }
        qxs_coll *c = NULL;
        int r = coll_open(s, e->d_name, &c);
        if (r) {
            qxs_log(QXS_LOG_ERROR, "collection %s: recovery failed: %s", e->d_name, qx_last_error());
            rc = r;
            continue;
        }
        pthread_rwlock_wrlock(&s->reg_rw);
        r = registry_add(s, c);
        pthread_rwlock_unlock(&s->reg_rw);
        if (r) {
            coll_free(c);
            rc = r;
        }
    }
    closedir(d);
    return rc;
}

int qxs_coll_load(qxs_server *s, const char *name) {
    qxs_coll *c = NULL;
    int rc = coll_open(s, name, &c);
    if (rc) return rc;
    pthread_rwlock_wrlock(&s->reg_rw);
    for (size_t i = 0; !rc && i < s->ncolls; i++)
        if (!strcmp(s->colls[i]->name, name)) rc = qx_error_set(QX_EEXIST, "collection '%s' already exists", name);
    if (!rc) rc = registry_add(s, c);
    pthread_rwlock_unlock(&s->reg_rw);
    if (rc) coll_free(c);
    return rc;
}

/* ---- create / drop ------------------------------------------------------- */

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char f[PATH_MAX + 300];
            snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            unlink(f);
        }
        closedir(d);
    }
    rmdir(dir);
}

int qxs_coll_create(qxs_server *s, const char *name, const qxs_coll_params *p) {
    char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
    static _Atomic unsigned seq;
    if (snprintf(dir, sizeof dir, "%s/collections/%s", s->cfg.data, name) >= (int)sizeof dir ||
        snprintf(tmp, sizeof tmp, "%s/collections/.new-%s-%d-%u", s->cfg.data, name, (int)getpid(),
                 atomic_fetch_add(&seq, 1)) >= (int)sizeof tmp)
        return qx_error_set(QX_EINVAL, "data directory path too long");
    pthread_rwlock_wrlock(&s->reg_rw);
    int rc = 0;
    qxs_coll *c = NULL;
    for (size_t i = 0; i < s->ncolls; i++)
        if (!strcmp(s->colls[i]->name, name)) {
            rc = qx_error_set(QX_EEXIST, "collection '%s' already exists", name);
            goto out;
        }
    if (s->ncolls >= QXS_MAX_COLLECTIONS) {
        rc = qx_error_set(QX_ELIMIT, "at most %d collections", QXS_MAX_COLLECTIONS);
        goto out;
    }
    /* a directory the registry does not hold is a collection that failed to
     * load at start-up: never replace (or, on an error below, delete) it */
    struct stat sb;
    if (lstat(dir, &sb) == 0) {
        rc = qx_error_set(QX_EEXIST, "collection '%s' exists on disk (%s) but is not loaded: see the server's start-up "
                      "log; repair or move that directory away before re-creating it", name, dir);
        goto out;
    }
    if (mkdir(tmp, 0755) != 0) {
        rc = qx_error_set(QX_EIO, "mkdir %s: %s", tmp, strerror(errno));
        goto out;
    }
    c = coll_alloc(name, dir, p);
    if (!c) {
        rc = qx_error_set(QX_ENOMEM, "collection");
        remove_dir(tmp);
        goto out;
    }
    c->created = (double)time(NULL);
    char *meta = meta_json(c);
    if (!meta) rc = qx_error_set(QX_ENOMEM, "metadata");
    if (!rc && !(rc = path_in(path, sizeof path, tmp, META))) rc = qx_write_atomic(path, meta, strlen(meta));
    qx_free(meta);
    int moved = 0; /* dir is ours (renamed from tmp) only once this is set */
    if (!rc) {
        if (rename(tmp, dir) != 0) rc = qx_error_set(QX_EIO, "rename %s: %s", tmp, strerror(errno));
        else moved = 1;
    }
    if (!rc) rc = qx_fsync_dir(dir);
    if (!rc && !(rc = path_in(path, sizeof path, dir, WALF)))
        rc = qxs_wal_open(&c->wal, path, c->d, NULL, NULL, NULL);
    if (!rc) rc = registry_add(s, c);
    if (rc) {
        remove_dir(moved ? dir : tmp);
        coll_free(c);
    }
out:
    pthread_rwlock_unlock(&s->reg_rw);
    return rc;
}

int qxs_coll_drop(qxs_server *s, const char *name) {
    char trash[PATH_MAX];
    static _Atomic unsigned seq;
    pthread_rwlock_wrlock(&s->reg_rw);
    qxs_coll *c = NULL;
    size_t i;
    for (i = 0; i < s->ncolls; i++)
        if (!strcmp(s->colls[i]->name, name)) {
            c = s->colls[i];
            break;
        }
    if (!c) {
        pthread_rwlock_unlock(&s->reg_rw);
        return qx_error_set(QX_ENOTFOUND, "collection '%s' not found", name);
    }
    if (snprintf(trash, sizeof trash, "%s/collections/.drop-%s-%d-%u", s->cfg.data, name, (int)getpid(),
                 atomic_fetch_add(&seq, 1)) >= (int)sizeof trash) {
        pthread_rwlock_unlock(&s->reg_rw);
        return qx_error_set(QX_EINVAL, "data directory path too long");
    }
    /* The rename is the commit point: after it (and the directory fsync) the
     * collection is gone even if we crash before the files are unlinked. */
    int rc = 0;
    /* Under wmu: no write, checkpoint or rebuild swap of this collection is
     * in progress, and none starts writing into c->dir afterwards (they
     * check dropped under wmu), so a collection re-created under the same
     * name can never receive files of the old one. */
    pthread_mutex_lock(&c->wmu);
    if (rename(c->dir, trash) != 0) rc = qx_error_set(QX_EIO, "rename %s: %s", c->dir, strerror(errno));
    if (!rc) {
        qx_fsync_dir(trash);
        s->colls[i] = s->colls[--s->ncolls];
        atomic_store(&c->dropped, 1);
    }
    pthread_mutex_unlock(&c->wmu);
    pthread_rwlock_unlock(&s->reg_rw);
    if (rc) return rc;
    remove_dir(trash);
    qxs_coll_put(c);
    return 0;
}

/* ---- writes ---------------------------------------------------------------- */

void qxs__coll_track(qxs_coll *c, const int64_t *ids, size_t n) {
    if (!c->tracking) return;
    size_t need;
    if (!qx_size_add(c->ntouched, n, &need)) return;
    if (need > c->cap_touched) {
        size_t cap = c->cap_touched ? c->cap_touched : 1024;
        while (cap < need) cap *= 2;
        int64_t *t = qx_realloc(c->touched, cap * sizeof *t);
        if (!t) {
            c->tracking = -1; /* lost track: the rebuild must give up */
            return;
        }
        c->touched = t;
        c->cap_touched = cap;
    }
    memcpy(c->touched + c->ntouched, ids, n * sizeof *ids);
    c->ntouched += n;
}

int qxs__coll_maybe_checkpoint(qxs_coll *c) {
    if (c->wal.size < QXS_WAL_CHECKPOINT_BYTES) return 0;
    return qxs_coll_checkpoint(c);
}

/* Log one META record (ids, keys, payloads) and, for upserts, the vectors'
 * UPSERT record, under wmu; then apply both under the write lock and call
 * the hook. Caller holds wmu and has checked c->dropped. */
static int log_meta(qxs_coll *c, const qxs_meta_ent *e, size_t n, uint64_t lsn) {
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = qxs_meta_encode(e, n, &body, &blen);
    if (!rc && blen > QXS_WAL_MAX_RECORD) rc = qx_error_set(QX_ELIMIT, "payloads of one request above the 1 GiB record limit");
    if (!rc) rc = qxs_wal_append_meta(&c->wal, lsn, body, (uint32_t)blen);
    if (rc && c->wal.failed) atomic_store(&c->failed, 1);
    qx_free(body);
    return rc;
}

static void hook_put(qxs_coll *c, const qxs_meta_ent *e, size_t n) {
    for (size_t i = 0; c->hook && i < n; i++)
        c->hook(c->hook_ctx, QXS_HOOK_PUT, &e[i].pid, e[i].key, (const uint8_t *)e[i].payload, e[i].len);
}

int qxs_coll_upsert(qxs_server *s, qxs_coll *c, const qxs_pid *pids, const float *x, const qxs_bytes *payloads,
                    size_t n, uint64_t *lsn_out) {
    if (atomic_load(&c->failed)) return qx_error_set(QX_EIO, "collection is read-only after an I/O error");
    for (size_t i = 0; payloads && i < n; i++)
        if (payloads[i].len > QXS_MAX_PAYLOAD)
            return qx_error_set(QX_ELIMIT, "payload of %u bytes above %d", payloads[i].len, QXS_MAX_PAYLOAD);
    int64_t *keys = qx_malloc((n ? n : 1) * sizeof *keys);
    qxs_meta_ent *ents = qx_calloc(n ? n : 1, sizeof *ents);
    if (!keys || !ents) {
        qx_free(keys), qx_free(ents);
        return qx_error_set(QX_ENOMEM, "upsert of %zu points", n);
    }
    pthread_mutex_lock(&c->wmu);
    /* Growing the store reallocates the rows searches read: under the write
     * lock, and before the WAL append so that the apply below cannot fail
     * for lack of memory after the record is durable. */
    pthread_rwlock_wrlock(&c->rw);
    int rc = qxs_store_reserve(&c->store, n);
    pthread_rwlock_unlock(&c->rw);
    if (!rc) rc = qxs_pmeta_assign(&c->pm, pids, n, keys);
    for (size_t i = 0; !rc && i < n; i++)
        ents[i] = (qxs_meta_ent){.key = keys[i], .pid = pids[i], .len = payloads ? payloads[i].len : 0,
                                 .payload = payloads ? (const char *)payloads[i].data : NULL};
    uint64_t lsn = c->lsn + 2; /* lsn - 1: the META record */
    if (!rc && atomic_load(&c->dropped)) rc = qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name);
    if (!rc) rc = log_meta(c, ents, n, lsn - 1);
    if (!rc) rc = qxs_wal_append(&c->wal, QXS_WAL_UPSERT, lsn, keys, x, (uint32_t)n, c->d);
    if (rc && c->wal.failed) atomic_store(&c->failed, 1); /* the log is unusable: red, read-only */
    if (!rc) {
        c->lsn = lsn;
        pthread_rwlock_wrlock(&c->rw);
        rc = qxs_store_upsert(&c->store, keys, x, n);
        if (!rc) rc = qxs_pmeta_apply(&c->pm, ents, n);
        if (!rc) hook_put(c, ents, n);
        pthread_rwlock_unlock(&c->rw);
        /* Encoding (beam search) happens inside qx_ivf_add under the write
         * lock, so it is done in small chunks: a search waits for at most
         * one chunk, not for the whole batch. */
        int irc = 0;
        for (size_t i = 0; !rc && !irc && c->ivf && i < n; i += QXS_INDEX_CHUNK) {
            size_t m = n - i < QXS_INDEX_CHUNK ? n - i : QXS_INDEX_CHUNK;
            pthread_rwlock_wrlock(&c->rw);
            irc = index_apply(c, QXS_WAL_UPSERT, keys + i, x + i * c->d, m);
            pthread_rwlock_unlock(&c->rw);
        }
        if (irc) {
            /* The raw store (the source of truth) has the points; the index
             * missed them. Mark the collection for a rebuild by logging. */
            qxs_log(QXS_LOG_ERROR, "collection %s: index add failed (%s); exact data kept, rebuild advised",
                    c->name, qx_last_error());
        }
        if (!rc) {
            qxs__coll_track(c, keys, n);
            qxs__coll_maybe_checkpoint(c);
        }
    }
    pthread_mutex_unlock(&c->wmu);
    if (!rc) {
        rc = qxs_wal_sync(&c->wal, lsn);
        atomic_fetch_add(&s->m.wal_fsyncs, 1);
        if (rc) atomic_store(&c->failed, 1);
    }
    if (!rc) atomic_fetch_add(&s->m.points_upserted, n);
    if (lsn_out) *lsn_out = lsn;
    qx_free(keys), qx_free(ents);
    return rc;
}

/* Keys of the ids that are stored now (caller holds wmu: no writer moves them). */
static size_t live_keys(qxs_coll *c, const qxs_pid *pids, size_t n, int64_t *keys, size_t *pos) {
    size_t m = 0;
    pthread_rwlock_rdlock(&c->rw);
    for (size_t i = 0; i < n; i++) {
        int64_t k = qxs_pmeta_key(&c->pm, &pids[i]);
        if (k < 0 || !qxs_store_get(&c->store, k)) continue;
        size_t j = 0;
        while (j < m && keys[j] != k) j++;
        if (j < m && n > 64) continue; /* (duplicates only matter for small lists; the store ignores them) */
        if (j == m) {
            if (pos) pos[m] = i;
            keys[m++] = k;
        }
    }
    pthread_rwlock_unlock(&c->rw);
    return m;
}

int qxs_coll_delete(qxs_server *s, qxs_coll *c, const qxs_pid *pids, size_t n, uint64_t *lsn_out,
                    size_t *removed) {
    if (atomic_load(&c->failed)) return qx_error_set(QX_EIO, "collection is read-only after an I/O error");
    int64_t *ids = qx_malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return qx_error_set(QX_ENOMEM, "delete of %zu points", n);
    pthread_mutex_lock(&c->wmu);
    size_t m = live_keys(c, pids, n, ids, NULL);
    uint64_t lsn = c->lsn + 1;
    int rc = atomic_load(&c->dropped) ? qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name)
             : m ? qxs_wal_append(&c->wal, QXS_WAL_DELETE, lsn, ids, NULL, (uint32_t)m, c->d) : 0;
    if (rc && c->wal.failed) atomic_store(&c->failed, 1);
    if (!rc && m) {
        c->lsn = lsn;
        pthread_rwlock_wrlock(&c->rw);
        for (size_t i = 0; c->hook && i < m; i++) {
            qxs_pid pid = qxs_pmeta_pid(&c->pm, ids[i]);
            c->hook(c->hook_ctx, QXS_HOOK_DEL, &pid, ids[i], NULL, 0);
        }
        qxs_store_delete(&c->store, ids, m, removed);
        for (size_t i = 0; i < m; i++) qxs_pmeta_forget(&c->pm, ids[i]);
        int irc = index_apply(c, QXS_WAL_DELETE, ids, NULL, m);
        pthread_rwlock_unlock(&c->rw);
        if (irc) qxs_log(QXS_LOG_ERROR, "collection %s: index remove failed: %s", c->name, qx_last_error());
        qxs__coll_track(c, ids, m);
        qxs__coll_maybe_checkpoint(c);
    } else if (!rc && removed) {
        *removed = 0;
    }
    pthread_mutex_unlock(&c->wmu);
    if (!rc && m) {
        rc = qxs_wal_sync(&c->wal, lsn);
        atomic_fetch_add(&s->m.wal_fsyncs, 1);
        if (rc) atomic_store(&c->failed, 1);
    }
    if (!rc && removed) atomic_fetch_add(&s->m.points_deleted, *removed);
    if (lsn_out) *lsn_out = m ? lsn : c->lsn;
    qx_free(ids);
    return rc;
}

int qxs_coll_set_payload(qxs_server *s, qxs_coll *c, const qxs_pid *pids, const qxs_bytes *payloads, size_t n,
                         uint64_t *lsn_out, size_t *updated) {
    if (atomic_load(&c->failed)) return qx_error_set(QX_EIO, "collection is read-only after an I/O error");
    for (size_t i = 0; i < n; i++)
        if (payloads[i].len > QXS_MAX_PAYLOAD)
            return qx_error_set(QX_ELIMIT, "payload of %u bytes above %d", payloads[i].len, QXS_MAX_PAYLOAD);
    int64_t *keys = qx_malloc((n ? n : 1) * sizeof *keys);
    size_t *pos = qx_malloc((n ? n : 1) * sizeof *pos);
    qxs_meta_ent *e = qx_calloc(n ? n : 1, sizeof *e);
    if (!keys || !pos || !e) {
        qx_free(keys), qx_free(pos), qx_free(e);
        return qx_error_set(QX_ENOMEM, "payload update of %zu points", n);
    }
    pthread_mutex_lock(&c->wmu);
    size_t m = live_keys(c, pids, n, keys, pos);
    for (size_t i = 0; i < m; i++)
        e[i] = (qxs_meta_ent){.key = keys[i], .pid = pids[pos[i]], .len = payloads[pos[i]].len,
                              .payload = (const char *)payloads[pos[i]].data};
    uint64_t lsn = c->lsn + 1;
    int rc = atomic_load(&c->dropped) ? qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name)
             : m ? log_meta(c, e, m, lsn) : 0;
    if (!rc && m) {
        c->lsn = lsn;
        pthread_rwlock_wrlock(&c->rw);
        rc = qxs_pmeta_apply(&c->pm, e, m);
        if (!rc) hook_put(c, e, m);
        pthread_rwlock_unlock(&c->rw);
        qxs__coll_maybe_checkpoint(c);
    }
    pthread_mutex_unlock(&c->wmu);
    if (!rc && m) {
        rc = qxs_wal_sync(&c->wal, lsn);
        atomic_fetch_add(&s->m.wal_fsyncs, 1);
        if (rc) atomic_store(&c->failed, 1);
    }
    if (lsn_out) *lsn_out = m ? lsn : c->lsn;
    if (updated) *updated = m;
    qx_free(keys), qx_free(pos), qx_free(e);
    return rc;
}

/* ---- reading points ------------------------------------------------------------ */

int qxs_coll_get_key_locked(qxs_coll *c, int64_t rowkey, qxs_pid *id, float *vec, uint8_t **payload,
                            uint32_t *plen) {
    const float *v = rowkey >= 0 ? qxs_store_get(&c->store, rowkey) : NULL;
    if (payload) *payload = NULL;
    if (plen) *plen = 0;
    if (!v) return QX_ENOTFOUND;
    if (id) *id = qxs_pmeta_pid(&c->pm, rowkey);
    if (vec) memcpy(vec, v, c->d * sizeof *vec);
    if (payload) {
        uint32_t len;
        const char *b = qxs_pmeta_payload(&c->pm, rowkey, &len);
        if (b) {
            if (!(*payload = qx_malloc(len))) return qx_error_set(QX_ENOMEM, "payload copy");
            memcpy(*payload, b, len);
            if (plen) *plen = len;
        }
    }
    return 0;
}

int qxs_coll_get_key(qxs_coll *c, int64_t rowkey, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    pthread_rwlock_rdlock(&c->rw);
    int rc = qxs_coll_get_key_locked(c, rowkey, id, vec, payload, plen);
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

int qxs_coll_get_point(qxs_coll *c, const qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    pthread_rwlock_rdlock(&c->rw);
    int64_t k = qxs_pmeta_key(&c->pm, id);
    int rc = qxs_coll_get_key_locked(c, k, NULL, vec, payload, plen);
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

int qxs_coll_foreach(qxs_coll *c, qxs_point_fn fn, void *ctx) {
    pthread_rwlock_rdlock(&c->rw);
    int r = 0;
    for (size_t i = 0; !r && i < c->store.n; i++) {
        int64_t k = c->store.ids[i];
        qxs_pid pid = qxs_pmeta_pid(&c->pm, k);
        uint32_t len;
        const char *b = qxs_pmeta_payload(&c->pm, k, &len);
        r = fn(ctx, &pid, k, (const uint8_t *)b, len);
    }
    pthread_rwlock_unlock(&c->rw);
    return r;
}

void qxs_coll_set_hook(qxs_coll *c, qxs_point_hook fn, void *ctx) {
    pthread_rwlock_wrlock(&c->rw);
    c->hook = fn;
    c->hook_ctx = ctx;
    pthread_rwlock_unlock(&c->rw);
}

int qxs_coll_rowkey_live(qxs_coll *c, int64_t rowkey) { return rowkey >= 0 && qxs_store_get(&c->store, rowkey); }

void qxs_coll_dist_locked(qxs_coll *c, const float *q, const int64_t *rowkeys, size_t n, float *dist) {
    qxs_store_dist(&c->store, q, qxs_metric_of(c->distance), rowkeys, n, dist);
}

int qxs_coll_checkpoint(qxs_coll *c) {
    char path[PATH_MAX];
    int rc = 0;
    if (atomic_load(&c->dropped)) return 0;
    double t0 = qx_now();
    if (c->ivf) {
        path_in(path, sizeof path, c->dir, INDEX);
        if ((rc = qx_ivf_save(c->ivf, path))) goto out;
    }
    /* meta.bin first: a crash before snapshot.bin replays the log from the
     * older snapshot, and META records re-apply idempotently */
    path_in(path, sizeof path, c->dir, PMETA);
    if ((rc = qxs_pmeta_save(&c->pm, c->lsn, path))) goto out;
    path_in(path, sizeof path, c->dir, SNAP);
    if ((rc = qxs_store_save(&c->store, c->lsn, path))) goto out;
    path_in(path, sizeof path, c->dir, WALF);
    rc = qxs_wal_reset(&c->wal, path);
out:
    if (rc) qxs_log(QXS_LOG_ERROR, "collection %s: checkpoint failed: %s", c->name, qx_last_error());
    else
        qxs_log(QXS_LOG_INFO, "collection %s: checkpoint at lsn %llu (%zu points) in %.3f s", c->name,
                (unsigned long long)c->lsn, c->store.n, qx_now() - t0);
    return rc;
}

void qxs_checkpoint_all(qxs_server *s) {
    pthread_rwlock_rdlock(&s->reg_rw);
    for (size_t i = 0; i < s->ncolls; i++) {
        qxs_coll *c = s->colls[i];
        pthread_mutex_lock(&c->wmu);
        if (c->wal.size > 0) qxs_coll_checkpoint(c);
        pthread_mutex_unlock(&c->wmu);
    }
    pthread_rwlock_unlock(&s->reg_rw);
}

/* ---- search ---------------------------------------------------------------- */

/* One IVF search context per request thread, re-made when the index changes
 * (keyed by a generation number, not the pointer, which malloc may reuse).
 * Held through a pthread key so that it is freed when the thread exits. */
typedef struct tl_search {
    qx_ivf_search_ctx *ctx;
    uint64_t gen;
} tl_search;
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static void tl_free(void *p) {
    tl_search *t = p;
    qx_ivf_search_ctx_free(t->ctx);
    qx_free(t);
}
static void tl_init(void) { pthread_key_create(&tl_key, tl_free); }
static tl_search *tl_get(void) {
    pthread_once(&tl_once, tl_init);
    tl_search *t = pthread_getspecific(tl_key);
    if (!t && (t = qx_calloc(1, sizeof *t)) != NULL && pthread_setspecific(tl_key, t) != 0) {
        qx_free(t);
        t = NULL;
    }
    return t;
}

/* Exact top-k among the given keys (absent ones skipped). */
static int exact_among(qxs_coll *c, const float *q, const int64_t *keys, size_t n, size_t k, float *dist,
                       int64_t *ids, size_t *found) {
    float *scratch = qx_malloc(1024 * sizeof *scratch);
    if (!scratch) return qx_error_set(QX_ENOMEM, "search scratch");
    qxs_topk h = {.k = k, .n = 0, .dist = dist, .ids = ids};
    for (size_t i0 = 0; i0 < n; i0 += 1024) {
        size_t m = n - i0 < 1024 ? n - i0 : 1024;
        qxs_coll_dist_locked(c, q, keys + i0, m, scratch);
        for (size_t i = 0; i < m; i++)
            if (isfinite(scratch[i])) qxs_topk_push(&h, scratch[i], keys[i0 + i]);
    }
    *found = qxs_topk_finish(&h);
    qx_free(scratch);
    return 0;
}

/* Every stored row tested by the filter, the passing ones scored exactly. */
static int exact_filtered(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, int64_t *ids,
                          size_t *found) {
    int64_t *keys = qx_malloc((c->store.n ? c->store.n : 1) * sizeof *keys);
    if (!keys) return qx_error_set(QX_ENOMEM, "filter candidates");
    size_t n = 0;
    for (size_t i = 0; i < c->store.n; i++)
        if (o->filter(o->filter_ctx, c->store.ids[i])) keys[n++] = c->store.ids[i];
    int rc = exact_among(c, q, keys, n, o->k, dist, ids, found);
    qx_free(keys);
    return rc;
}

static int search_keys(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, int64_t *ids,
                       size_t *found, int *used_index);

int qxs_coll_search(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, qxs_pid *pids,
                    int64_t *rowkeys, size_t *found, int *used_index) {
    int64_t *keys = rowkeys ? rowkeys : qx_malloc(o->k * sizeof *keys);
    if (!keys) return qx_error_set(QX_ENOMEM, "search");
    pthread_rwlock_rdlock(&c->rw);
    int rc = search_keys(c, q, o, dist, keys, found, used_index);
    for (size_t i = 0; !rc && i < *found; i++) pids[i] = qxs_pmeta_pid(&c->pm, keys[i]);
    pthread_rwlock_unlock(&c->rw);
    if (keys != rowkeys) qx_free(keys);
    return rc;
}

/* The search proper, under the read lock, answering row keys. */
static int search_keys(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, int64_t *ids,
                       size_t *found, int *used_index) {
    int metric = qxs_metric_of(c->distance), rc = 0;
    *used_index = 0;
    if (o->only_keys) return exact_among(c, q, o->only_keys, o->n_only_keys, o->k, dist, ids, found);
    if (o->filter && (!c->ivf || o->exact)) return exact_filtered(c, q, o, dist, ids, found);
    if (c->ivf && !o->exact) {
        tl_search *tl = tl_get();
        qx_ivf_search_ctx *ctx = NULL;
        if (tl) {
            if (tl->gen != c->ivf_gen) {
                qx_ivf_search_ctx_free(tl->ctx);
                tl->ctx = NULL;
                tl->gen = 0;
                if (!qx_ivf_search_ctx_new(&tl->ctx, c->ivf)) tl->gen = c->ivf_gen;
            }
            ctx = tl->ctx;
        }
        size_t kk = o->rerank > o->k ? o->rerank : o->k;
        float *d2 = dist;
        int64_t *i2 = ids;
        if (kk > o->k) {
            d2 = qx_malloc(kk * sizeof *d2);
            i2 = qx_malloc(kk * sizeof *i2);
            if (!d2 || !i2) rc = qx_error_set(QX_ENOMEM, "search shortlist");
        }
        qx_search_params sp;
        qx_search_params_init(&sp);
        if (o->nprobe) sp.nprobe = o->nprobe;
        sp.threads = 1;
        if (o->filter) {
            sp.filter = o->filter;
            sp.filter_ctx = o->filter_ctx;
            sp.max_nprobe = o->max_nprobe;
        }
        if (!rc) rc = qx_ivf_search(c->ivf, ctx, q, 1, kk, &sp, d2, i2);
        if (!rc) {
            *used_index = 1;
            if (o->rerank) {
                /* Re-rank the shortlist with the raw vectors: exact scores. */
                qxs_store_dist(&c->store, q, metric, i2, kk, d2);
                qxs_topk h = {.k = o->k, .n = 0, .dist = dist, .ids = ids};
                for (size_t i = 0; i < kk; i++)
                    if (i2[i] >= 0) qxs_topk_push(&h, d2[i], i2[i]);
                *found = qxs_topk_finish(&h);
            } else {
                size_t f = 0;
                for (size_t i = 0; i < kk && i2[i] >= 0; i++) f++;
                /* the index reports inner products for IP: flip to "smaller is better" */
                if (metric == 1)
                    for (size_t i = 0; i < f; i++) dist[i] = -dist[i];
                *found = f;
            }
        }
        if (d2 != dist) qx_free(d2);
        if (i2 != ids) qx_free(i2);
    } else {
        rc = qxs_store_search(&c->store, q, o->k, metric, dist, ids, found);
    }
    return rc;
}
