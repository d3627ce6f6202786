/* server/collection.c — collections: creation, recovery, writes, search,
 * checkpoints, and the registry that maps names to them.
 *
 * On disk, <data>/collections/<name>/ holds
 *   meta.json          parameters (written once, atomically)
 *   MANIFEST           the live sealed segments, the log position they cover
 *                      and the index file (manifest.h): the commit point
 *   seg-<no>.dat       sealed segments: ids, raw vectors, payloads (segment.h)
 *   seg-<no>.del.<g>   their tombstones
 *   seg-<no>.codes.<g> their IVF entries (list and code per row; segcodes.h)
 *   index-<g>.qx       the IVF model (qx_ivf_save_model: centroids, quantizer,
 *                      DERP reservoir), once a rebuild succeeded
 *   wal.log            records after the manifest's lsn (wal.c)
 *   report.json        the last rebuild/gate report
 * A directory written before segments (snapshot.bin + index.qx + wal.log)
 * is converted when it is opened (upgrade_legacy).
 * Decisions:
 * 1. Every write is: take wmu, append the WAL record, apply it to the store
 *    and the index under the write side of rw, release wmu, then wait for
 *    the group-commit fsync before replying. WAL order is apply order, and
 *    row keys are assigned in that order, so replay rebuilds the same rows.
 * 2. The index is keyed by row keys. Upserts and deletes are idempotent on
 *    it (add replaces a key, remove of an absent key does nothing), so
 *    replaying a log suffix over an index file that already holds part of it
 *    gives the same state.
 * 3. A checkpoint (log past QXS_WAL_CHECKPOINT_BYTES, after a rebuild swap,
 *    at shutdown) writes the index file if it changed, seals the mutable
 *    segment, writes changed tombstones, then the manifest (commit), then
 *    resets the log. It holds wmu (writers wait) and takes rw only for the
 *    pointer swap (searches go on).
 * 4. A red collection (log I/O error, or a corrupt log record before the
 *    tail) serves reads and refuses writes, checkpoints and rebuild swaps;
 *    its log file is never truncated or reset, so nothing is lost to repair.
 * 5. Collections are reference counted: DELETE unlinks the name at once; the
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
#include "qinx/fastscan.h"
#include "qinx/kernels.h"
#include "qinx/monitor.h"
#include "repair.h"
#include "route.h"
#include "srv.h"

#define META "meta.json"
#define LEGACY_SNAP "snapshot.bin"
#define LEGACY_INDEX "index.qx"
#define WALF "wal.log"
#define REPORT "report.json"
#define QXS_INDEX_CHUNK 64

const char *qxs_distance_name(qxs_distance d) {
    return d == QXS_COSINE ? "Cosine" : d == QXS_DOT ? "Dot" : "Euclid";
}

static int path_in(char *out, size_t cap, const char *dir, const char *file) {
    if (snprintf(out, cap, "%s/%s", dir, file) >= (int)cap)
        return qx_error_set(QX_EINVAL, "path too long: %s/%s", dir, file);
    return 0;
}

static void index_name(char *out, size_t cap, const char *dir, uint64_t gen) {
    if (snprintf(out, cap, "%s/index-%llu.qx", dir, (unsigned long long)gen) >= (int)cap) out[0] = 0;
}

static void coll_free(qxs_coll *c) {
    if (!c) return;
    qxs_wal_close(&c->wal);
    qxs_wcodes_close(&c->wcodes);
    qxs_store_free(&c->store);
    qx_ivf_free(c->ivf);
    qxs_rowmap_free(c->rowmap);
    qx_free(c->touched);
    for (qxs_job *j = c->jobs; j;) {
        qxs_job *nx = j->next;
        qx_free(j->report);
        qx_free(j);
        j = nx;
    }
    qx_free(c->last_report);
    qxs_pidxset_free(c->pidxs);
    qx_monitor_free(c->mon);
    pthread_mutex_destroy(&c->mon_mu);
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
    c->fs_product = p->fs_product;
    c->fs_steps = p->fs_steps;
    c->min_recall = p->min_recall;
    c->on_disk = p->on_disk;
    c->indexing_threshold = p->indexing_threshold;
    c->refs = 1; /* the registry's reference */
    c->wal.fd = -1;
    qxs_wcodes_init(&c->wcodes);
    pthread_mutex_init(&c->wal.sync_mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* Searches hold the read side continuously under load; without writer
     * preference an upsert could wait forever. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->rw, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&c->job_mu, NULL);
    pthread_mutex_init(&c->mon_mu, NULL);
    return c;
}

static void set_red(qxs_coll *c, const char *why) {
    if (atomic_load(&c->failed)) return;
    snprintf(c->red_reason, sizeof c->red_reason, "%s", why);
    atomic_store(&c->failed, 1);
    qxs_log(QXS_LOG_ERROR, "collection %s: read-only (red): %s", c->name, why);
}

void qxs_coll_set_red(qxs_coll *c, const char *why) { set_red(c, why); }

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
    json_t *o = json_pack("{s:s, s:{s:I, s:s, s:b}, s:{s:s, s:I, s:I}, s:{s:f}, s:{s:I}, s:f}", "name", c->name,
                          "vectors", "size", (json_int_t)c->d, "distance", qxs_distance_name(c->distance), "on_disk",
                          c->on_disk, "quantizer", "kind", qx_quantizer_kind_name(c->quant_kind), "bytes",
                          (json_int_t)c->bytes, "nlist", (json_int_t)c->nlist, "gate", "min_recall",
                          c->min_recall, "optimizers_config", "indexing_threshold",
                          (json_int_t)c->indexing_threshold, "created", c->created);
    if (!o) return NULL;
    if (c->quant_kind == QX_QUANT_FASTSCAN) { /* no keys for other kinds: their files read as before */
        json_t *q = json_object_get(o, "quantizer");
        json_object_set_new(q, "shape", json_string(c->fs_product ? "product" : "residual"));
        if (c->fs_steps) json_object_set_new(q, "fs_steps", json_integer((json_int_t)c->fs_steps));
    }
    char *txt = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    return txt;
}

/* The fast-scan shape and steps of meta.json's quantizer; absent (files
 * written before them) = residual, steps from the bytes. */
static int meta_parse_fs(const char *path, json_t *q, qxs_coll_params *p) {
    json_t *sh = json_object_get(q, "shape"), *st = json_object_get(q, "fs_steps");
    const char *shape = sh ? json_string_value(sh) : "residual";
    if (!shape || (strcmp(shape, "residual") && strcmp(shape, "product")) || (st && !json_is_integer(st)) ||
        ((sh || st) && p->quant_kind != QX_QUANT_FASTSCAN))
        return qx_error_set(QX_EFORMAT, "%s: bad metadata (quantizer.shape or quantizer.fs_steps)", path);
    json_int_t steps = st ? json_integer_value(st) : 0;
    p->fs_product = !strcmp(shape, "product");
    p->fs_steps = steps > 0 && steps <= QX_FS_MAX_STEPS4 ? (size_t)steps : 0;
    size_t m4, m8;
    if ((st && !p->fs_steps) ||
        ((sh || st) && qxs_fs_split(p->d, p->distance, p->bytes, p->fs_product, p->fs_steps, &m4, &m8)))
        return qx_error_set(QX_EFORMAT, "%s: bad metadata (quantizer.fs_steps = %lld)", path, (long long)steps);
    return 0;
}

static int meta_parse(const char *path, qxs_coll_params *p, double *created) {
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (!o) return qx_error_set(QX_EFORMAT, "%s: %s (line %d)", path, e.text, e.line);
    json_int_t d = 0, bytes = 0, nlist = 0, thr = QXS_INDEXING_THRESHOLD_DEFAULT;
    const char *dist = NULL, *kind = "rq";
    double minr = 0, cr = 0;
    int on_disk = 1; /* directories written before the option: raw vectors on disk */
    int rc = json_unpack_ex(o, &e, 0, "{s:{s:I, s:s, s?:b}, s?:{s?:s, s?:I, s?:I}, s?:{s?:F}, s?:{s?:I}, s?:F}",
                            "vectors", "size", &d, "distance", &dist, "on_disk", &on_disk, "quantizer", "kind",
                            &kind, "bytes", &bytes, "nlist", &nlist, "gate", "min_recall", &minr,
                            "optimizers_config", "indexing_threshold", &thr, "created", &cr);
    int out = 0;
    if (rc || d < 1 || d > QX_MAX_DIM || bytes < 1 || bytes > QX_MAX_STEPS || nlist < 0 ||
        nlist > QX_MAX_NLIST || thr < 0) {
        out = qx_error_set(QX_EFORMAT, "%s: bad metadata (%s)", path, rc ? e.text : "value out of range");
    } else {
        p->d = (size_t)d;
        p->distance = !strcmp(dist, "Cosine") ? QXS_COSINE : !strcmp(dist, "Dot") ? QXS_DOT : QXS_EUCLID;
        p->quant_kind = !strcmp(kind, "qinco")      ? QX_QUANT_QINCO
                        : !strcmp(kind, "fastscan") ? QX_QUANT_FASTSCAN
                                                    : QX_QUANT_RQ;
        p->bytes = (size_t)bytes;
        p->nlist = (size_t)nlist;
        p->min_recall = minr;
        p->on_disk = on_disk;
        p->indexing_threshold = (size_t)thr;
        *created = cr;
        out = meta_parse_fs(path, json_object_get(o, "quantizer"), p);
    }
    json_decref(o);
    return out;
}

/* ---- applying changes (live writes and replay share these) ----------------- */

static void track(qxs_coll *c, int64_t old_key, int64_t new_key) {
    if (!c->tracking) return;
    if (c->ntouched + 2 > c->cap_touched) {
        size_t cap = c->cap_touched ? 2 * c->cap_touched : 2048;
        int64_t *t = qx_realloc(c->touched, cap * sizeof *t);
        if (!t) {
            c->tracking = -1; /* lost track: the rebuild must give up */
            return;
        }
        c->touched = t;
        c->cap_touched = cap;
    }
    c->touched[c->ntouched++] = old_key;
    c->touched[c->ntouched++] = new_key;
}

/* Remove killed keys from the index and the hooks; add new rows to the index
 * (in small chunks under the write lock: a search waits for one chunk at most).
 * Caller holds wmu, not rw. Index failures are logged (the store is the truth). */
static void index_rows(qxs_coll *c, const int64_t *old_keys, const int64_t *new_keys, size_t n, int locked) {
    if (!locked) pthread_rwlock_wrlock(&c->rw);
    for (size_t i = 0; i < n; i++) {
        if (old_keys[i] >= 0 && c->ivf) qx_ivf_remove(c->ivf, &old_keys[i], 1, NULL);
        if (c->hook && old_keys[i] >= 0) {
            qxs_pid id;
            if (!qxs_store_pid(&c->store, old_keys[i], &id)) c->hook(c->hook_ctx, QXS_HOOK_DEL, &id, old_keys[i], NULL, 0);
        }
        if (c->hook && new_keys && new_keys[i] >= 0) {
            qxs_pid id;
            uint32_t plen;
            const uint8_t *p = qxs_store_payload(&c->store, new_keys[i], &plen);
            if (!qxs_store_pid(&c->store, new_keys[i], &id)) c->hook(c->hook_ctx, QXS_HOOK_PUT, &id, new_keys[i], p, plen);
        }
        track(c, old_keys[i], new_keys ? new_keys[i] : -1);
    }
    if (!locked) pthread_rwlock_unlock(&c->rw);
    if (!new_keys || !c->ivf) return;
    qx_ivf_info info;
    if (qx_ivf_get_info(c->ivf, &info)) return;
    size_t cs = info.code_size, rec = 4 + cs;
    float *buf = qx_aligned_alloc(QXS_INDEX_CHUNK * c->d * sizeof(float));
    uint8_t *ecodes = qx_malloc(QXS_INDEX_CHUNK * cs + 1);
    int64_t keys[QXS_INDEX_CHUNK], ekeys[QXS_INDEX_CHUNK];
    uint32_t elists[QXS_INDEX_CHUNK];
    int irc = buf && ecodes ? 0 : qx_error_set(QX_ENOMEM, "index chunk");
    for (size_t i = 0; !irc && i < n; i += QXS_INDEX_CHUNK) {
        size_t m = n - i < QXS_INDEX_CHUNK ? n - i : QXS_INDEX_CHUNK, k = 0, ke = 0;
        if (!locked) pthread_rwlock_wrlock(&c->rw);
        for (size_t j = 0; j < m; j++) {
            int64_t key = new_keys[i + j];
            if (key < 0 || !qxs_store_live(&c->store, key)) continue;
            const uint8_t *e = c->wc_use ? c->wc_use + (i + j) * rec : NULL;
            uint32_t l;
            if (e && (memcpy(&l, e, 4), l != UINT32_MAX)) { /* replay: the code noted in wal.codes */
                elists[ke] = l;
                memcpy(ecodes + ke * cs, e + 4, cs);
                ekeys[ke++] = key;
                continue;
            }
            memcpy(buf + k * c->d, qxs_store_vec(&c->store, key), c->d * sizeof(float));
            keys[k++] = key;
        }
        if (k) irc = qx_ivf_add(c->ivf, buf, keys, k);
        if (ke && !irc) irc = qx_ivf_add_entries(c->ivf, elists, ecodes, ekeys, ke);
        if (!locked) pthread_rwlock_unlock(&c->rw);
    }
    qx_aligned_free(buf);
    qx_free(ecodes);
    if (irc) {
        qxs_log(QXS_LOG_ERROR, "collection %s: index add failed (%s); exact data kept, rebuild advised", c->name,
                qx_last_error());
        return;
    }
    /* note the codes this record's points got, so a replay need not encode
     * them again; only under the manifest's model (wal_codes.h) */
    if (c->wc_lsn && c->wcodes.fd >= 0 && !c->ivf_dirty && c->wcodes.gen == c->store.index_gen &&
        c->wcodes.cs == cs && n <= UINT32_MAX) {
        uint8_t *ent = qx_malloc(n * rec + 1);
        uint32_t *lists = qx_malloc(n * 4 + 4);
        uint8_t *codes = qx_malloc(n * cs + 1);
        if (ent && lists && codes && !qx_ivf_get_entries(c->ivf, new_keys, n, lists, codes)) {
            for (size_t i = 0; i < n; i++) {
                memcpy(ent + i * rec, &lists[i], 4);
                memcpy(ent + i * rec + 4, codes + i * cs, cs);
            }
            qxs_wcodes_append(&c->wcodes, c->wc_lsn, c->wc_crc, (uint32_t)n, ent);
        }
        qx_free(ent);
        qx_free(lists);
        qx_free(codes);
    }
}

/* Apply an upsert to store + index. Caller holds wmu; the store has room
 * (qxs_store_reserve). */
static void apply_upsert(qxs_coll *c, const qxs_pid *ids, const float *x, const qxs_bytes *p, size_t n, int locked) {
    int64_t *keys = qx_malloc(2 * n * sizeof *keys + 16);
    if (!locked) pthread_rwlock_wrlock(&c->rw);
    qxs_store_upsert(&c->store, ids, x, p, n, keys, keys ? keys + n : NULL);
    if (!locked) pthread_rwlock_unlock(&c->rw);
    if (keys) index_rows(c, keys, keys + n, n, locked);
    else qxs_log(QXS_LOG_ERROR, "collection %s: out of memory indexing %zu points; rebuild advised", c->name, n);
    qx_free(keys);
}

static size_t apply_delete(qxs_coll *c, const qxs_pid *ids, size_t n, int locked) {
    int64_t *keys = qx_malloc(n * sizeof *keys + 8);
    size_t removed = 0;
    if (!locked) pthread_rwlock_wrlock(&c->rw);
    if (keys) {
        qxs_store_delete(&c->store, ids, n, keys, &removed);
        /* hooks need the pids of killed rows, still readable (rows are never erased) */
        index_rows(c, keys, NULL, n, 1);
    } else {
        qxs_store_delete(&c->store, ids, n, NULL, &removed);
        qxs_log(QXS_LOG_ERROR, "collection %s: out of memory updating the index on delete", c->name);
    }
    if (!locked) pthread_rwlock_unlock(&c->rw);
    qx_free(keys);
    return removed;
}

/* Payload change: the row is rewritten with the same vector (rows are immutable). */
static size_t apply_payload(qxs_coll *c, const qxs_pid *ids, const qxs_bytes *p, size_t n, int locked) {
    size_t done = 0;
    float *v = qx_aligned_alloc(c->d * sizeof(float));
    if (!v) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!locked) pthread_rwlock_rdlock(&c->rw);
        const float *x = qxs_store_get(&c->store, &ids[i]);
        if (x) memcpy(v, x, c->d * sizeof(float));
        if (!locked) pthread_rwlock_unlock(&c->rw);
        if (!x) continue;
        apply_upsert(c, &ids[i], v, &p[i], 1, locked);
        done++;
    }
    qx_aligned_free(v);
    return done;
}

static size_t payload_bytes(const qxs_bytes *p, size_t n) {
    size_t b = 0;
    for (size_t i = 0; p && i < n; i++) b += p[i].len;
    return b;
}

/* ---- recovery ------------------------------------------------------------- */

typedef struct replay_ctx {
    qxs_coll *c;
    uint64_t from_lsn;
    size_t applied, skipped;
} replay_ctx;

static int replay_one(void *ctx, const qxs_wal_rec *r) {
    replay_ctx *rc = ctx;
    qxs_coll *c = rc->c;
    if (r->lsn <= rc->from_lsn) {
        rc->skipped++;
        return 0;
    }
    /* The record's arrays are unaligned inside the file buffer: copy. */
    size_t n = r->n, vb = r->type == QXS_WAL_UPSERT2 ? n * c->d * sizeof(float) : 0;
    qxs_pid *ids = qx_malloc(n * sizeof *ids + 1);
    qxs_bytes *p = qx_calloc(n + 1, sizeof *p);
    float *x = vb ? qx_aligned_alloc(vb) : NULL;
    int err = (!ids || !p || (vb && !x)) ? qx_error_set(QX_ENOMEM, "replay of %zu points", n) : 0;
    for (uint32_t i = 0; !err && i < n; i++)
        if (qxs_wal_rec_pid(r, i, &ids[i]))
            err = qx_error_set(QX_EFORMAT, "bad point id in WAL record lsn %llu", (unsigned long long)r->lsn);
    if (!err && vb) memcpy(x, r->vecs, vb);
    if (!err && r->plens) {
        const uint8_t *d = r->pdata;
        for (uint32_t i = 0; i < n; i++) {
            memcpy(&p[i].len, r->plens + (size_t)i * 4, 4);
            p[i].data = d;
            d += p[i].len;
        }
    }
    if (!err && r->type != QXS_WAL_DELETE2) err = qxs_store_reserve(&c->store, n, payload_bytes(p, n));
    size_t finite = n;
    if (!err && r->type == QXS_WAL_UPSERT2)
        err = qxs_repair_partition(c->dir, c->name, WALF, r->lsn, c->d, ids, x, p, n, &finite);
    if (!err) {
        if (r->type == QXS_WAL_UPSERT2) {
            /* the codes noted for this record, if it has them (wal_codes.h) */
            c->wc_use = NULL;
            c->wc_lsn = 0;
            if (c->ivf && finite == n) {
                c->wc_lsn = r->lsn;
                c->wc_crc = r->crc;
                if (c->wcodes.old && qxs_wcodes_find(&c->wcodes, r->lsn, r->crc, r->n, &c->wc_use)) c->wcodes.used++;
                else c->wcodes.missed++;
            }
            apply_upsert(c, ids, x, r->plens ? p : NULL, finite, 1);
            c->wc_use = NULL;
            c->wc_lsn = 0;
            /* a point the log overwrote with a non-finite vector has no searchable state left */
            if (finite < n) apply_delete(c, ids + finite, n - finite, 1);
        } else if (r->type == QXS_WAL_DELETE2) apply_delete(c, ids, n, 1);
        else apply_payload(c, ids, p, n, 1);
    }
    qx_free(ids);
    qx_free(p);
    qx_aligned_free(x);
    if (err) return err;
    if (r->lsn > c->lsn) c->lsn = r->lsn;
    rc->applied++;
    return 0;
}

static void refresh_index_bytes(qxs_coll *c) {
    qx_ivf_info info;
    c->ivf_bytes = c->ivf && !qx_ivf_get_info(c->ivf, &info) ? info.bytes : 0;
}

static int64_t legacy_remap(void *ctx, int64_t id) {
    qxs_coll *c = ctx;
    qxs_pid p = qxs_pid_u64((uint64_t)id);
    return qxs_store_find(&c->store, &p);
}

/* A directory written before segments: snapshot.bin (+ index.qx keyed by
 * user ids) + a log of legacy records. Load the snapshot into the mutable
 * segment, re-key the index to row keys; the log is replayed by the caller
 * and the first checkpoint writes the new layout (the old files are removed
 * only after the manifest is durable). *legacy = 1 when this happened. */
static int upgrade_legacy(qxs_server *s, qxs_coll *c, int *legacy, uint64_t *snap_lsn) {
    char path[PATH_MAX];
    int64_t *ids = NULL;
    float *vecs = NULL;
    size_t n = 0;
    *legacy = 0;
    path_in(path, sizeof path, c->dir, LEGACY_SNAP);
    int rc = qxs_legacy_snapshot_read(path, c->d, &ids, &vecs, &n, snap_lsn);
    if (rc == QX_ENOTFOUND) {
        rc = 0;
        *snap_lsn = 0;
        path_in(path, sizeof path, c->dir, LEGACY_INDEX);
        if (access(path, F_OK) != 0) {
            /* no snapshot, no index: either a new-format collection that has
             * not checkpointed yet, or a legacy one with only a log; both replay */
            path_in(path, sizeof path, c->dir, WALF);
            struct stat st;
            *legacy = stat(path, &st) == 0 && st.st_size > 0;
            return 0;
        }
    }
    if (rc) return rc;
    *legacy = 1;
    qxs_pid *pids = qx_malloc((n + 1) * sizeof *pids);
    if (!pids) rc = qx_error_set(QX_ENOMEM, "upgrade of %zu points", n);
    for (size_t i = 0; !rc && i < n; i++) pids[i] = qxs_pid_u64((uint64_t)ids[i]);
    /* NaN rows stored by servers before the Cosine norm floor go to the quarantine file */
    if (!rc) rc = qxs_repair_partition(c->dir, c->name, LEGACY_SNAP, *snap_lsn, c->d, pids, vecs, NULL, n, &n);
    if (!rc) rc = qxs_store_reserve(&c->store, n, 0);
    if (!rc) qxs_store_upsert(&c->store, pids, vecs, NULL, n, NULL, NULL);
    qx_free(pids);
    qx_free(ids);
    qx_aligned_free(vecs);
    if (rc) return rc;
    path_in(path, sizeof path, c->dir, LEGACY_INDEX);
    if (access(path, F_OK) == 0) {
        if ((rc = qx_ivf_load(path, &c->ivf))) return rc;
        if ((rc = qx_ivf_remap_ids(c->ivf, legacy_remap, c))) return rc;
        c->ivf_gen = atomic_fetch_add(&s->ivf_gen, 1) + 1;
        c->ivf_dirty = 1;
    }
    return 0;
}

static int coll_checkpoint_locked(qxs_coll *c, int force);

/* (Re)start wal.codes for the model the manifest names, when it is the one
 * in memory (replay: keep the entries the file holds for it). A failure
 * only costs encoding time at the next replay: logged, not fatal. */
static void wcodes_start(qxs_coll *c, int replay) {
    char path[PATH_MAX];
    qx_ivf_info info = {0};
    uint64_t gen = c->ivf && !c->ivf_dirty && !qx_ivf_get_info(c->ivf, &info) ? c->store.index_gen : 0;
    path_in(path, sizeof path, c->dir, QXS_WCODES_FILE);
    if (qxs_wcodes_open(&c->wcodes, path, gen, info.code_size, info.nlist, replay))
        qxs_log(QXS_LOG_WARN, "collection %s: %s (replays will encode the log's points)", c->name, qx_last_error());
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
    double t0 = qx_now();
    int fresh = 0, legacy = 0;
    uint64_t from = 0;
    double t_segs = 0, t_model = 0, t_codes = 0, t_log = 0; /* where the time went */
    if ((rc = qxs_store_open(&c->store, dir, c->d, c->on_disk, &fresh))) goto fail;
    t_segs = qx_now() - t0;
    if (fresh) {
        if ((rc = upgrade_legacy(s, c, &legacy, &from))) goto fail;
    } else {
        from = c->store.lsn;
        if (c->store.index_gen) {
            index_name(path, sizeof path, dir, c->store.index_gen);
            if ((rc = qx_ivf_load(path, &c->ivf))) goto fail;
            c->ivf_gen = atomic_fetch_add(&s->ivf_gen, 1) + 1;
            /* a version-1 manifest's index file held every entry: the next
             * checkpoint writes the model and the codes files */
            if (c->store.man_version < 2) c->ivf_dirty = 1;
        }
    }
    /* the index's entries: from the segments' codes files (no raw vector is
     * read), into a row map of 8 bytes a row */
    t_model = qx_now() - t0 - t_segs;
    if (c->ivf && ((rc = qxs_rowmap_attach(c->ivf, &c->rowmap)) || (rc = qxs_store_codes_load(&c->store, c->ivf, c->rowmap)) ||
                   (rc = qx_ivf_trim(c->ivf))))
        goto fail;
    t_codes = qx_now() - t0 - t_segs - t_model;
    c->lsn = from;
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
    replay_ctx rctx = {.c = c, .from_lsn = from};
    qxs_wal_status ws;
    wcodes_start(c, 1);
    path_in(path, sizeof path, dir, WALF);
    /* room for every point the log can hold at once, not doubling (each
     * doubling copied the rows so far and touched new pages) */
    struct stat wst;
    if (stat(path, &wst) == 0 && wst.st_size > 0)
        qxs_store_reserve(&c->store, (size_t)wst.st_size / (c->d * sizeof(float) + QXS_PID_DISK + 4), 0);
    pthread_mutex_destroy(&c->wal.sync_mu); /* qxs_wal_open initialises it */
    if ((rc = qxs_wal_open(&c->wal, path, c->d, replay_one, &rctx, &ws))) goto fail;
    qxs_wcodes_done_replay(&c->wcodes);
    t_log = qx_now() - t0 - t_segs - t_model - t_codes;
    atomic_store(&c->wal.written_lsn, c->lsn);
    atomic_store(&c->wal.synced_lsn, c->lsn);
    if (ws.corrupt_at >= 0) {
        set_red(c, qx_last_error());
    } else if (ws.dropped) {
        qxs_log(QXS_LOG_WARN, "collection %s: dropped a torn write-ahead log tail of %llu bytes (a write cut short "
                              "by a crash, never acknowledged)",
                name, (unsigned long long)ws.dropped);
    }
    if (legacy && !atomic_load(&c->failed)) {
        /* write the new layout now; then the old files can go */
        if ((rc = coll_checkpoint_locked(c, 1))) goto fail;
        path_in(path, sizeof path, dir, LEGACY_SNAP);
        unlink(path);
        path_in(path, sizeof path, dir, LEGACY_INDEX);
        unlink(path);
        qx_fsync_dir(path);
        qxs_log(QXS_LOG_ALWAYS, "collection %s: converted from snapshot.bin + wal.log to segments (%zu points)", name,
                c->store.n_live);
    } else if (!atomic_load(&c->failed)) {
        qxs_store_gc(&c->store);
    }
    refresh_index_bytes(c);
    qxs_log(QXS_LOG_INFO, "collection %s: recovered %zu points (%zu sealed segments, manifest lsn %llu, %zu log "
                          "records replayed, their codes from wal.codes for %llu, encoded for %llu; %s) in %.3f s "
                          "(segments %.3f, model %.3f, codes %.3f, log %.3f)",
            name, c->store.n_live, c->store.nsegs, (unsigned long long)from, rctx.applied,
            (unsigned long long)c->wcodes.used, (unsigned long long)c->wcodes.missed,
            c->ivf ? "IVF index loaded" : "exact search until the first rebuild", qx_now() - t0, t_segs, t_model,
            t_codes, t_log);
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
    if (!rc && s->ncolls >= QXS_MAX_COLLECTIONS) rc = qx_error_set(QX_ELIMIT, "at most %d collections", QXS_MAX_COLLECTIONS);
    if (!rc) rc = registry_add(s, c);
    pthread_rwlock_unlock(&s->reg_rw);
    if (rc) coll_free(c);
    return rc;
}

int qxs_coll_set_indexing_threshold(qxs_coll *c, size_t thr) {
    char path[PATH_MAX];
    pthread_mutex_lock(&c->wmu);
    size_t old = c->indexing_threshold;
    c->indexing_threshold = thr;
    char *meta = meta_json(c);
    int rc = !meta ? qx_error_set(QX_ENOMEM, "metadata")
             : atomic_load(&c->dropped) ? qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name)
                                        : path_in(path, sizeof path, c->dir, META);
    if (!rc) rc = qx_write_atomic(path, meta, strlen(meta));
    if (rc) c->indexing_threshold = old;
    qx_free(meta);
    pthread_mutex_unlock(&c->wmu);
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
    if (!rc) {
        qxs_store_free(&c->store);
        rc = qxs_store_open(&c->store, dir, c->d, c->on_disk, NULL);
    }
    if (!rc && !(rc = path_in(path, sizeof path, dir, WALF))) {
        pthread_mutex_destroy(&c->wal.sync_mu);
        rc = qxs_wal_open(&c->wal, path, c->d, NULL, NULL, NULL);
    }
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

size_t qxs_checkpoint_bytes = QXS_WAL_CHECKPOINT_BYTES;

static int maybe_checkpoint(qxs_coll *c) {
    if (c->wal.size < qxs_checkpoint_bytes) return 0;
    return coll_checkpoint_locked(c, 0);
}

static int check_writable(qxs_server *s, qxs_coll *c, size_t more_bytes) {
    if (atomic_load(&c->failed))
        return qx_error_set(QX_EIO, "collection '%s' is read-only: %s", c->name, c->red_reason);
    if (s && s->cfg.memory_limit && more_bytes) {
        size_t ram = qxs_server_ram(s);
        if (ram + more_bytes > s->cfg.memory_limit)
            return qx_error_set(QXS_EMEMLIMIT, "memory limit: the server holds %zu bytes in RAM, this write needs about %zu "
                            "more, the limit (--memory-limit) is %zu", ram, more_bytes, s->cfg.memory_limit);
    }
    return 0;
}

/* Common tail of a write: checkpoint if due, release wmu, wait for the fsync. */
static int write_done(qxs_server *s, qxs_coll *c, uint64_t lsn) {
    maybe_checkpoint(c);
    pthread_mutex_unlock(&c->wmu);
    int rc = qxs_wal_sync(&c->wal, lsn);
    atomic_fetch_add(&s->m.wal_fsyncs, 1);
    if (rc) set_red(c, "fsync of the write-ahead log failed");
    return rc;
}

/* Take wmu, make room in the mutable segment (upserts and payload changes),
 * append the log record. On success wmu stays held and c->lsn = *lsn; on
 * failure wmu is released. Growing the mutable segment reallocates rows
 * searches read: under the write lock, and before the log append so that the
 * apply cannot fail for lack of memory after the record is durable. */
static int log_write(qxs_coll *c, int type, const qxs_pid *ids, const float *x, const qxs_bytes *payloads, size_t n,
                     uint64_t *lsn) {
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    if (type != QXS_WAL_DELETE2) {
        pthread_rwlock_wrlock(&c->rw);
        rc = qxs_store_reserve(&c->store, n, payload_bytes(payloads, n));
        pthread_rwlock_unlock(&c->rw);
    }
    *lsn = c->lsn + 1;
    if (!rc && atomic_load(&c->dropped)) rc = qx_error_set(QX_ENOTFOUND, "collection '%s' was deleted", c->name);
    if (!rc && atomic_load(&c->failed)) rc = qx_error_set(QX_EIO, "collection '%s' is read-only: %s", c->name, c->red_reason);
    if (!rc) rc = qxs_wal_append(&c->wal, type, *lsn, ids, x, payloads, (uint32_t)n, c->d);
    if (rc && c->wal.failed) set_red(c, "a write to the write-ahead log failed");
    if (rc) {
        pthread_mutex_unlock(&c->wmu);
        return rc;
    }
    c->lsn = *lsn;
    return 0;
}

int qxs_coll_upsert(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const float *x, const qxs_bytes *payloads,
                    size_t n, uint64_t *lsn_out) {
    uint64_t lsn;
    int rc = check_writable(s, c, n * (c->d * sizeof(float) + sizeof(qxs_pid) + 24) + payload_bytes(payloads, n));
    if (rc || (rc = log_write(c, QXS_WAL_UPSERT2, ids, x, payloads, n, &lsn))) return rc;
    c->wc_lsn = lsn;
    c->wc_crc = c->wal.last_crc;
    apply_upsert(c, ids, x, payloads, n, 0);
    c->wc_lsn = 0;
    qxs_drift_observe(c, x, n); /* live drift monitor: under wmu, in WAL order */
    rc = write_done(s, c, lsn);
    if (!rc) atomic_fetch_add(&s->m.points_upserted, n);
    if (lsn_out) *lsn_out = lsn;
    return rc;
}

int qxs_coll_delete(qxs_server *s, qxs_coll *c, const qxs_pid *ids, size_t n, uint64_t *lsn_out, size_t *removed) {
    uint64_t lsn;
    int rc = check_writable(NULL, c, 0);
    if (rc || (rc = log_write(c, QXS_WAL_DELETE2, ids, NULL, NULL, n, &lsn))) return rc;
    size_t r = apply_delete(c, ids, n, 0);
    if (removed) *removed = r;
    rc = write_done(s, c, lsn);
    if (!rc) atomic_fetch_add(&s->m.points_deleted, r);
    if (lsn_out) *lsn_out = lsn;
    return rc;
}

int qxs_coll_set_payload(qxs_server *s, qxs_coll *c, const qxs_pid *ids, const qxs_bytes *payloads, size_t n,
                         uint64_t *lsn_out, size_t *updated) {
    uint64_t lsn;
    int rc = check_writable(s, c, n * (c->d * sizeof(float) + sizeof(qxs_pid) + 24) + payload_bytes(payloads, n));
    if (rc || (rc = log_write(c, QXS_WAL_PAYLOAD, ids, NULL, payloads, n, &lsn))) return rc;
    size_t u = apply_payload(c, ids, payloads, n, 0);
    if (updated) *updated = u;
    rc = write_done(s, c, lsn);
    if (lsn_out) *lsn_out = lsn;
    return rc;
}

/* ---- reads --------------------------------------------------------------------- */

static int read_key_locked(qxs_coll *c, int64_t key, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    if (!qxs_store_live(&c->store, key)) return QX_ENOTFOUND;
    if (id) qxs_store_pid(&c->store, key, id);
    if (vec) memcpy(vec, qxs_store_vec(&c->store, key), c->d * sizeof(float));
    if (payload) {
        uint32_t l;
        const uint8_t *p = qxs_store_payload(&c->store, key, &l);
        *payload = NULL;
        if (plen) *plen = l;
        if (l) {
            *payload = qx_malloc(l + 1);
            if (!*payload) return qx_error_set(QX_ENOMEM, "payload");
            memcpy(*payload, p, l);
            (*payload)[l] = 0;
        }
    }
    return 0;
}

int qxs_coll_get_key(qxs_coll *c, int64_t key, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    pthread_rwlock_rdlock(&c->rw);
    int rc = read_key_locked(c, key, id, vec, payload, plen);
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

int qxs_coll_get_key_locked(qxs_coll *c, int64_t key, qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    return read_key_locked(c, key, id, vec, payload, plen);
}

int qxs_coll_get_point(qxs_coll *c, const qxs_pid *id, float *vec, uint8_t **payload, uint32_t *plen) {
    pthread_rwlock_rdlock(&c->rw);
    int64_t key = qxs_store_find(&c->store, id);
    int rc = key < 0 ? QX_ENOTFOUND : read_key_locked(c, key, NULL, vec, payload, plen);
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

int qxs_coll_rowkey_live(qxs_coll *c, int64_t key) { return qxs_store_live(&c->store, key); }

void qxs_coll_dist_locked(qxs_coll *c, const float *q, const int64_t *keys, size_t n, float *dist) {
    qxs_store_dist(&c->store, q, qxs_metric_of(c->distance), keys, n, dist);
}

typedef struct visit_ctx {
    qxs_coll_visit_fn fn;
    void *ctx;
} visit_ctx;
static int visit_one(void *ctx, int64_t key, const qxs_pid *id, const float *vec, const uint8_t *p, uint32_t plen) {
    visit_ctx *v = ctx;
    (void)vec;
    return v->fn(v->ctx, id, key, p, plen);
}

int qxs_coll_foreach(qxs_coll *c, qxs_coll_visit_fn fn, void *ctx) {
    visit_ctx v = {fn, ctx};
    pthread_rwlock_rdlock(&c->rw);
    int rc = qxs_store_foreach(&c->store, visit_one, &v);
    pthread_rwlock_unlock(&c->rw);
    return rc;
}

void qxs_coll_set_hook_locked(qxs_coll *c, qxs_point_hook fn, void *ctx) {
    pthread_rwlock_wrlock(&c->rw);
    c->hook = fn;
    c->hook_ctx = ctx;
    pthread_rwlock_unlock(&c->rw);
}

void qxs_coll_set_hook(qxs_coll *c, qxs_point_hook fn, void *ctx) {
    pthread_mutex_lock(&c->wmu);
    qxs_coll_set_hook_locked(c, fn, ctx);
    pthread_mutex_unlock(&c->wmu);
}

void qxs_coll_memory(qxs_coll *c, qxs_coll_mem *m) {
    memset(m, 0, sizeof *m);
    pthread_rwlock_rdlock(&c->rw);
    qxs_store_mem sm;
    qxs_store_memory(&c->store, &sm);
    m->points = c->store.n_live;
    m->tombstones = sm.tombstone_bytes;
    m->mutable_bytes = sm.mutable_bytes;
    m->raw_ram = sm.raw_ram_bytes;
    m->disk_segments = sm.disk_bytes;
    m->wal = c->wal.size;
    qx_ivf_info info;
    if (c->ivf && !qx_ivf_get_info(c->ivf, &info)) {
        m->codes = info.ntotal * info.code_size;
        m->ids = info.ntotal * sizeof(int64_t);
        m->index_other = info.bytes > m->codes + m->ids ? info.bytes - m->codes - m->ids : 0;
        m->index_other += qxs_rowmap_bytes(c->rowmap);
    }
    pthread_rwlock_unlock(&c->rw);
    m->total_ram = m->codes + m->ids + m->index_other + m->tombstones + m->mutable_bytes + m->raw_ram;
}

size_t qxs_server_ram(qxs_server *s) {
    size_t total = 0;
    pthread_rwlock_rdlock(&s->reg_rw);
    for (size_t i = 0; i < s->ncolls; i++) {
        qxs_coll_mem m;
        qxs_coll_memory(s->colls[i], &m);
        total += m.total_ram;
    }
    pthread_rwlock_unlock(&s->reg_rw);
    return total;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static int coll_checkpoint_locked(qxs_coll *c, int force) {
    char path[PATH_MAX];
    int rc = 0;
    if (atomic_load(&c->dropped)) return 0;
    if (atomic_load(&c->failed))
        return qx_error_set(QX_EIO, "collection '%s' is read-only: %s; no checkpoint", c->name, c->red_reason);
    if (!force && c->wal.size == 0 && !c->ivf_dirty) return 0;
    double t0 = qx_now();
    uint64_t gen = c->ivf ? c->store.index_gen : 0, bytes = 0;
    if (c->ivf && (c->ivf_dirty || !gen)) {
        gen = c->store.index_gen + 1;
        index_name(path, sizeof path, c->dir, gen);
        if ((rc = qx_ivf_save_model(c->ivf, path))) goto out;
        struct stat st;
        if (stat(path, &st) == 0) bytes += (uint64_t)st.st_size;
    }
    qxs_ckpt ck;
    if ((rc = qxs_store_ckpt_prepare(&c->store, c->lsn, gen, c->ivf, &ck))) goto out;
    bytes += ck.bytes;
    pthread_rwlock_wrlock(&c->rw);
    qxs_store_ckpt_commit(&c->store, &ck, c->lsn, gen);
    pthread_rwlock_unlock(&c->rw);
    c->ivf_dirty = 0;
    path_in(path, sizeof path, c->dir, WALF);
    rc = qxs_wal_reset(&c->wal, path);
    if (rc) set_red(c, "could not reset the write-ahead log after a checkpoint");
    else wcodes_start(c, 0);
    qxs_store_gc(&c->store);
out:
    if (rc) {
        qxs_log(QXS_LOG_ERROR, "collection %s: checkpoint failed: %s", c->name, qx_last_error());
    } else {
        c->last_ckpt_bytes = bytes;
        c->last_ckpt_seconds = qx_now() - t0;
        qxs_log(QXS_LOG_INFO, "collection %s: checkpoint at lsn %llu (%zu points, %zu segments) wrote %llu bytes in "
                              "%.3f s",
                c->name, (unsigned long long)c->lsn, c->store.n_live, c->store.nsegs, (unsigned long long)bytes,
                c->last_ckpt_seconds);
    }
    return rc;
}

int qxs_coll_checkpoint(qxs_coll *c) { return coll_checkpoint_locked(c, 1); }

void qxs_checkpoint_all(qxs_server *s) {
    pthread_rwlock_rdlock(&s->reg_rw);
    for (size_t i = 0; i < s->ncolls; i++) {
        qxs_coll *c = s->colls[i];
        pthread_mutex_lock(&c->wmu);
        if (!atomic_load(&c->failed)) coll_checkpoint_locked(c, 0);
        pthread_mutex_unlock(&c->wmu);
    }
    pthread_rwlock_unlock(&s->reg_rw);
}

/* ---- merges ------------------------------------------------------------------------ */

/* Fold small sealed segments into one (store.c picks them). Holds wmu for
 * its duration (writers wait; searches go on until the pointer swap). Not
 * while a rebuild runs (its notion of which rows exist would go stale). */
int qxs_coll_merge(qxs_coll *c, size_t min_segs, size_t max_bytes, size_t *merged) {
    *merged = 0;
    pthread_mutex_lock(&c->job_mu);
    int busy = c->active != NULL;
    pthread_mutex_unlock(&c->job_mu);
    if (busy) return 0;
    pthread_mutex_lock(&c->wmu);
    int rc = 0;
    uint32_t nos[64];
    size_t k = atomic_load(&c->failed) || atomic_load(&c->dropped) || c->tracking
                   ? 0
                   : qxs_store_merge_pick(&c->store, min_segs, max_bytes, nos, 64);
    if (k < 2) goto out;
    double t0 = qx_now();
    /* an empty mutable segment can give its number to the merged one */
    if (c->store.mut.n > 0 && (rc = coll_checkpoint_locked(c, 1))) goto out;
    pthread_rwlock_wrlock(&c->rw);
    uint32_t new_no = c->store.mut.no++;
    pthread_rwlock_unlock(&c->rw);
    qxs_merge mg;
    if ((rc = qxs_store_merge_prepare(&c->store, nos, k, new_no, &mg))) {
        if (rc == QX_EFORMAT) set_red(c, qx_last_error()); /* a corrupt segment: stop loudly */
        goto out;
    }
    pthread_rwlock_wrlock(&c->rw);
    qxs_store_merge_commit(&c->store, &mg);
    if (c->ivf && qx_ivf_rename_ids(c->ivf, mg.old_keys, mg.new_keys, mg.nmoved))
        qxs_log(QXS_LOG_ERROR, "collection %s: index re-keying after a merge failed (%s); rebuild advised", c->name,
                qx_last_error());
    if (c->hook) /* row keys moved: the payload indexes follow */
        for (size_t i = 0; i < mg.nmoved; i++) {
            qxs_pid id;
            uint32_t plen;
            if (qxs_store_pid(&c->store, mg.new_keys[i], &id)) continue;
            const uint8_t *p = qxs_store_payload(&c->store, mg.new_keys[i], &plen);
            c->hook(c->hook_ctx, QXS_HOOK_DEL, &id, mg.old_keys[i], NULL, 0);
            if (qxs_store_live(&c->store, mg.new_keys[i]))
                c->hook(c->hook_ctx, QXS_HOOK_PUT, &id, mg.new_keys[i], p, plen);
        }
    pthread_rwlock_unlock(&c->rw);
    size_t moved = mg.nmoved; /* the merged segment's codes file is written by the checkpoint below */
    qxs_store_merge_free(&mg);
    rc = coll_checkpoint_locked(c, 1); /* the manifest that names the merged segment */
    if (!rc) {
        *merged = k;
        qxs_log(QXS_LOG_INFO, "collection %s: merged %zu segments into segment %u (%zu live rows) in %.3f s", c->name, k,
                new_no, moved, qx_now() - t0);
    }
out:
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

qxs_coll **qxs_coll_all_refs(qxs_server *s, size_t *n_out) {
    pthread_rwlock_rdlock(&s->reg_rw);
    size_t n = s->ncolls;
    qxs_coll **v = qx_malloc((n + 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        v[i] = s->colls[i];
        atomic_fetch_add(&v[i]->refs, 1);
    }
    pthread_rwlock_unlock(&s->reg_rw);
    *n_out = v ? n : 0;
    return v;
}

void qxs_merge_all(qxs_server *s) {
    size_t n;
    qxs_coll **v = qxs_coll_all_refs(s, &n);
    for (size_t i = 0; v && i < n; i++) {
        size_t merged;
        if (!atomic_load(&s->stopping)) qxs_coll_merge(v[i], QXS_MERGE_MIN_SEGS, QXS_MERGE_MAX_BYTES, &merged);
        qxs_coll_put(v[i]);
    }
    qx_free(v);
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

/* Filtered search without the IVF: exact top-k among the given keys (the
 * planner's few candidates; dead or unknown keys are skipped), or among every
 * live row that passes the filter. Caller holds the read lock. */
#define QXS_DIST_CHUNK 1024
static int exact_among(qxs_coll *c, const float *q, const int64_t *keys, size_t n, size_t k, float *dist,
                       int64_t *out, size_t *found) {
    float *scratch = qx_malloc(QXS_DIST_CHUNK * sizeof *scratch);
    if (!scratch) return qx_error_set(QX_ENOMEM, "search scratch");
    qxs_topk h = {.k = k, .n = 0, .dist = dist, .ids = out};
    for (size_t i0 = 0; i0 < n; i0 += QXS_DIST_CHUNK) {
        size_t m = n - i0 < QXS_DIST_CHUNK ? n - i0 : QXS_DIST_CHUNK;
        qxs_coll_dist_locked(c, q, keys + i0, m, scratch);
        for (size_t i = 0; i < m; i++)
            if (isfinite(scratch[i])) qxs_topk_push(&h, scratch[i], keys[i0 + i]);
    }
    *found = qxs_topk_finish(&h);
    qx_free(scratch);
    return 0;
}

typedef struct filter_scan {
    const qxs_search_opts *o;
    const float *q;
    size_t d;
    int metric;
    qxs_topk h;
} filter_scan;
static int filter_visit(void *ctx, int64_t key, const qxs_pid *id, const float *vec, const uint8_t *p, uint32_t plen) {
    filter_scan *f = ctx;
    (void)id, (void)p, (void)plen;
    if (!f->o->filter(f->o->filter_ctx, key)) return 0;
    qxs_topk_push(&f->h, f->metric == 0 ? qx_l2sqr(f->q, vec, f->d) : -qx_dot(f->q, vec, f->d), key);
    return 0;
}

static int exact_filtered(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, int64_t *out,
                          size_t *found) {
    filter_scan f = {.o = o, .q = q, .d = c->d, .metric = qxs_metric_of(c->distance)};
    f.h = (qxs_topk){.k = o->k, .n = 0, .dist = dist, .ids = out};
    qxs_store_foreach(&c->store, filter_visit, &f);
    *found = qxs_topk_finish(&f.h);
    return 0;
}

int qxs_coll_search(qxs_coll *c, const float *q, const qxs_search_opts *o, float *dist, qxs_pid *ids,
                    int64_t *keys_out, size_t *found, int *used_index) {
    int metric = qxs_metric_of(c->distance), rc = 0;
    *used_index = 0;
    *found = 0;
    size_t kk = c->ivf && !o->exact && o->rerank > o->k ? o->rerank : o->k;
    float *d2 = qx_malloc(kk * sizeof *d2);
    int64_t *k2 = qx_malloc(kk * sizeof *k2);
    if (!d2 || !k2) {
        qx_free(d2);
        qx_free(k2);
        return qx_error_set(QX_ENOMEM, "search shortlist");
    }
    pthread_rwlock_rdlock(&c->rw);
    size_t f = 0;
    if (o->only_keys) {
        rc = exact_among(c, q, o->only_keys, o->n_only_keys, o->k, dist, k2, &f);
    } else if (o->filter && (!c->ivf || o->exact)) {
        rc = exact_filtered(c, q, o, dist, k2, &f);
    } else if (c->ivf && !o->exact) {
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
        qx_search_params sp;
        qx_search_params_init(&sp);
        if (o->nprobe) sp.nprobe = o->nprobe;
        sp.shortlist = o->shortlist;
        sp.threads = 1;
        if (o->among_keys && qx_quantizer_kind(qx_ivf_quantizer(c->ivf)) != QX_QUANT_FASTSCAN) {
            sp.only_ids = o->among_keys; /* every passing row, scored from its code */
            sp.n_only_ids = o->n_among_keys;
        } else if (o->filter) { /* keeps probing, nearest lists first, until enough pass */
            sp.filter = o->filter;
            sp.filter_ctx = o->filter_ctx;
            sp.max_nprobe = o->max_nprobe;
            sp.filter_tested = o->filter_tested;
            sp.filter_passed = o->filter_passed;
            sp.filter_stop_below = o->filter_stop_below;
        }
        rc = qx_ivf_search(c->ivf, ctx, q, 1, kk, &sp, d2, k2);
        if (!rc) {
            *used_index = 1;
            if (o->rerank) {
                /* Re-rank the shortlist with the raw vectors (from the page
                 * cache when on disk): exact scores. */
                qxs_store_dist(&c->store, q, metric, k2, kk, d2);
                qxs_topk h = {.k = o->k, .n = 0, .dist = dist, .ids = k2};
                int64_t *tmp = qx_malloc(o->k * sizeof *tmp);
                if (!tmp) {
                    rc = qx_error_set(QX_ENOMEM, "search");
                } else {
                    h.ids = tmp;
                    for (size_t i = 0; i < kk; i++)
                        if (k2[i] >= 0 && isfinite(d2[i])) qxs_topk_push(&h, d2[i], k2[i]);
                    f = qxs_topk_finish(&h);
                    memcpy(k2, tmp, f * sizeof *k2);
                    qx_free(tmp);
                }
            } else {
                for (size_t i = 0; i < kk && k2[i] >= 0; i++) {
                    if (!qxs_store_live(&c->store, k2[i])) continue; /* a row killed a moment ago */
                    /* the index reports inner products for IP: flip to "smaller is better" */
                    dist[f] = metric == 1 ? -d2[i] : d2[i];
                    k2[f++] = k2[i];
                }
            }
        }
    } else {
        rc = qxs_store_search(&c->store, q, o->k, metric, dist, k2, &f);
    }
    for (size_t i = 0; !rc && i < f; i++) {
        qxs_store_pid(&c->store, k2[i], &ids[i]);
        if (keys_out) keys_out[i] = k2[i];
    }
    pthread_rwlock_unlock(&c->rw);
    if (!rc) *found = f;
    qx_free(d2);
    qx_free(k2);
    return rc;
}

/* ---- `qinx serve salvage-wal DIR` ---------------------------------------------------- */

int qxs_salvage_main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: qinx serve salvage-wal DATA/collections/NAME\n"
                        "Run with the server stopped. Rewrites NAME's wal.log keeping every valid record (those\n"
                        "before and after a corrupt stretch); the original is kept as wal.log.corrupt-TIME.\n");
        return 2;
    }
    char path[PATH_MAX], backup[PATH_MAX + 32];
    qxs_coll_params p;
    double created;
    if (path_in(path, sizeof path, argv[1], META) || meta_parse(path, &p, &created)) {
        fprintf(stderr, "qinx serve salvage-wal: %s\n", qx_last_error());
        return 1;
    }
    path_in(path, sizeof path, argv[1], WALF);
    uint64_t kept = 0, lost = 0;
    if (qxs_wal_salvage(path, p.d, &kept, &lost, backup, sizeof backup)) {
        fprintf(stderr, "qinx serve salvage-wal: %s\n", qx_last_error());
        return 1;
    }
    printf("%s: kept %llu valid records, dropped %llu damaged bytes; the original is %s\n", path,
           (unsigned long long)kept, (unsigned long long)lost, backup);
    return 0;
}
