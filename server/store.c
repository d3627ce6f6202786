/* server/store.c — a collection's points over segments (store.h).
 *
 * Decisions:
 * 1. Id lookup goes to the mutable segment's hash map first, then to the
 *    sealed segments newest first (binary search in each file's sorted
 *    permutation). An id has at most one live row, so the first live hit is
 *    the answer. The number of sealed segments stays small (merges fold them).
 * 2. A checkpoint seals the mutable segment with its number and row order
 *    unchanged, so the IVF index (keyed by row keys) needs no change, and it
 *    rewrites only the tombstone files that changed: its cost is what was
 *    written since the last one, not the collection's size.
 * 3. Tombstone generations are the checkpoint's lsn: unique, increasing, and
 *    a file of a failed checkpoint is simply superseded by the next one.
 * 4. Exact search scans each segment's rows in blocks with the batched
 *    kernels, straight from the mapping (page cache), skipping dead rows.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/kernels.h"
#include "qinx/alloc.h"
#include "qinx/core.h"
#include "qinx/error.h"
#include "segcodes.h"
#include "store.h"
#include "wal.h"

#define SNAP_MAGIC "QXSNAP01"
#define SEARCH_CHUNK 1024

static void store_init(qxs_store *s, const char *dir, size_t d, int on_disk) {
    memset(s, 0, sizeof *s);
    s->d = d;
    s->on_disk = on_disk;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    qxs_mseg_init(&s->mut, 1, d);
}

void qxs_store_free(qxs_store *s) {
    for (size_t i = 0; i < s->nsegs; i++) qxs_seg_close(s->segs[i]);
    qx_free(s->segs);
    qxs_mseg_free(&s->mut);
    memset(s, 0, sizeof *s);
}

static int segs_push(qxs_store *s, qxs_seg *g) {
    if (s->nsegs == s->cap_segs) {
        size_t cap = s->cap_segs ? 2 * s->cap_segs : 8;
        qxs_seg **v = qx_realloc(s->segs, cap * sizeof *v);
        if (!v) return qx_error_set(QX_ENOMEM, "segment list");
        s->segs = v;
        s->cap_segs = cap;
    }
    s->segs[s->nsegs++] = g;
    return 0;
}

int qxs_store_open(qxs_store *s, const char *dir, size_t d, int on_disk, int *fresh) {
    store_init(s, dir, d, on_disk);
    qxs_manifest m;
    int rc = qxs_manifest_read(dir, &m);
    if (fresh) *fresh = rc == QX_ENOTFOUND;
    if (rc == QX_ENOTFOUND) return 0;
    if (rc) return rc;
    if (m.d != d) {
        rc = qx_error_set(QX_EFORMAT, "%s/%s: dimension %zu, the collection's is %zu", dir, QXS_MANIFEST, m.d, d);
        qxs_manifest_free(&m);
        return rc;
    }
    for (size_t i = 0; !rc && i < m.nseg; i++) {
        qxs_seg *g = NULL;
        rc = qxs_seg_open(dir, m.segs[i].no, d, m.segs[i].n, m.segs[i].del_gen, on_disk, &g);
        if (!rc && (rc = segs_push(s, g))) qxs_seg_close(g);
        if (!rc) {
            s->n_live += g->n - g->ndead;
            g->codes_gen = m.segs[i].codes_gen;
        }
    }
    s->man_version = m.version;
    s->lsn = m.lsn;
    s->index_gen = m.index_gen;
    s->mut.no = m.next_seg;
    qxs_manifest_free(&m);
    if (rc) {
        qxs_store_free(s);
        store_init(s, dir, d, on_disk);
    }
    return rc;
}

int qxs_store_reserve(qxs_store *s, size_t more, size_t pbytes) {
    return qxs_mseg_reserve(&s->mut, more, pbytes);
}

static qxs_seg *seg_of(const qxs_store *s, uint32_t no) {
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->segs[mid]->no < no) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->nsegs && s->segs[lo]->no == no ? s->segs[lo] : NULL;
}

int64_t qxs_store_find(const qxs_store *s, const qxs_pid *id) {
    uint32_t row;
    if (qxs_pidmap_get(&s->mut.map, id, &row)) return qxs_rowkey(s->mut.no, row);
    for (size_t i = s->nsegs; i-- > 0;) {
        long r = qxs_seg_find(s->segs[i], id);
        if (r >= 0) return qxs_rowkey(s->segs[i]->no, (uint32_t)r);
    }
    return -1;
}

static int kill_key(qxs_store *s, int64_t key) {
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    if (no == s->mut.no) {
        qxs_mseg_kill(&s->mut, row);
        return 1;
    }
    qxs_seg *g = seg_of(s, no);
    if (!g) return 0;
    qxs_seg_kill(g, row);
    return 1;
}

void qxs_store_upsert(qxs_store *s, const qxs_pid *ids, const float *x, const qxs_bytes *p, size_t n,
                      int64_t *old_keys, int64_t *new_keys) {
    for (size_t i = 0; i < n; i++) {
        int64_t old = qxs_store_find(s, &ids[i]);
        if (old >= 0) kill_key(s, old);
        else s->n_live++;
        uint32_t row = qxs_mseg_append(&s->mut, &ids[i], x + i * s->d, p ? p[i].data : NULL, p ? p[i].len : 0);
        if (old_keys) old_keys[i] = old;
        if (new_keys) new_keys[i] = qxs_rowkey(s->mut.no, row);
    }
}

void qxs_store_delete(qxs_store *s, const qxs_pid *ids, size_t n, int64_t *old_keys, size_t *removed) {
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t old = qxs_store_find(s, &ids[i]);
        if (old >= 0 && kill_key(s, old)) {
            cnt++;
            s->n_live--;
        }
        if (old_keys) old_keys[i] = old;
    }
    if (removed) *removed = cnt;
}

int qxs_store_live(const qxs_store *s, int64_t key) {
    if (key < 0) return 0;
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    if (no == s->mut.no) return row < s->mut.n && !qxs_bit_get(s->mut.dead, row);
    const qxs_seg *g = seg_of(s, no);
    return g && row < g->n && !qxs_bit_get(g->dead, row);
}

const float *qxs_store_vec(const qxs_store *s, int64_t key) {
    if (key < 0) return NULL;
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    if (no == s->mut.no) return row < s->mut.n ? qxs_mseg_vec(&s->mut, row) : NULL;
    const qxs_seg *g = seg_of(s, no);
    return g && row < g->n ? qxs_seg_vec(g, row) : NULL;
}

int qxs_store_pid(const qxs_store *s, int64_t key, qxs_pid *id) {
    if (key < 0) return -1;
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    if (no == s->mut.no) {
        if (row >= s->mut.n) return -1;
        *id = s->mut.pids[row];
        return 0;
    }
    const qxs_seg *g = seg_of(s, no);
    if (!g || row >= g->n) return -1;
    qxs_seg_pid(g, row, id);
    return 0;
}

const uint8_t *qxs_store_payload(const qxs_store *s, int64_t key, uint32_t *len) {
    *len = 0;
    if (key < 0) return NULL;
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    if (no == s->mut.no) {
        if (row >= s->mut.n) return NULL;
        *len = (uint32_t)(s->mut.poff[row + 1] - s->mut.poff[row]);
        return *len ? s->mut.pblob + s->mut.poff[row] : NULL; /* no blob yet when no point has a payload */
    }
    const qxs_seg *g = seg_of(s, no);
    return g && row < g->n ? qxs_seg_payload(g, row, len) : NULL;
}

const float *qxs_store_get(const qxs_store *s, const qxs_pid *id) {
    return qxs_store_vec(s, qxs_store_find(s, id));
}

size_t qxs_store_rows(const qxs_store *s) {
    size_t n = s->mut.n;
    for (size_t i = 0; i < s->nsegs; i++) n += s->segs[i]->n;
    return n;
}

int64_t qxs_store_row_key(const qxs_store *s, size_t r) {
    for (size_t i = 0; i < s->nsegs; i++) {
        if (r < s->segs[i]->n) return qxs_rowkey(s->segs[i]->no, (uint32_t)r);
        r -= s->segs[i]->n;
    }
    return r < s->mut.n ? qxs_rowkey(s->mut.no, (uint32_t)r) : -1;
}

int qxs_store_foreach(const qxs_store *s, qxs_store_visit_fn fn, void *ctx) {
    for (size_t i = 0; i < s->nsegs; i++) {
        const qxs_seg *g = s->segs[i];
        for (size_t r = 0; r < g->n; r++) {
            if (qxs_bit_get(g->dead, r)) continue;
            qxs_pid id;
            uint32_t plen;
            qxs_seg_pid(g, (uint32_t)r, &id);
            const uint8_t *p = qxs_seg_payload(g, (uint32_t)r, &plen);
            int rc = fn(ctx, qxs_rowkey(g->no, (uint32_t)r), &id, qxs_seg_vec(g, (uint32_t)r), p, plen);
            if (rc) return rc;
        }
    }
    const qxs_mseg *m = &s->mut;
    for (size_t r = 0; r < m->n; r++) {
        if (qxs_bit_get(m->dead, r)) continue;
        int rc = fn(ctx, qxs_rowkey(m->no, (uint32_t)r), &m->pids[r], qxs_mseg_vec(m, (uint32_t)r),
                    m->pblob + m->poff[r], (uint32_t)(m->poff[r + 1] - m->poff[r]));
        if (rc) return rc;
    }
    return 0;
}

static void scan_rows(const float *q, const float *rows, const uint64_t *dead, uint32_t no, size_t n, size_t d,
                      int metric, qxs_topk *h) {
    float buf[SEARCH_CHUNK];
    for (size_t start = 0; start < n; start += SEARCH_CHUNK) {
        size_t m = n - start < SEARCH_CHUNK ? n - start : SEARCH_CHUNK;
        const float *x = rows + start * d;
        if (metric == 0) {
            qx_l2sqr_ny(buf, q, x, d, m);
        } else {
            qx_dot_ny(buf, q, x, d, m);
            for (size_t j = 0; j < m; j++) buf[j] = -buf[j];
        }
        for (size_t j = 0; j < m; j++)
            if (!qxs_bit_get(dead, start + j)) qxs_topk_push(h, buf[j], qxs_rowkey(no, (uint32_t)(start + j)));
    }
}

int qxs_store_search(const qxs_store *s, const float *q, size_t k, int metric, float *dist, int64_t *keys,
                     size_t *found) {
    qxs_topk h = {.k = k, .n = 0, .dist = dist, .ids = keys};
    for (size_t i = 0; i < s->nsegs; i++)
        scan_rows(q, s->segs[i]->vecs, s->segs[i]->dead, s->segs[i]->no, s->segs[i]->n, s->d, metric, &h);
    scan_rows(q, s->mut.vecs, s->mut.dead, s->mut.no, s->mut.n, s->d, metric, &h);
    size_t f = qxs_topk_finish(&h);
    if (found) *found = f;
    return 0;
}

void qxs_store_dist(const qxs_store *s, const float *q, int metric, const int64_t *keys, size_t n, float *dist) {
    for (size_t i = 0; i < n; i++) {
        const float *x = qxs_store_live(s, keys[i]) ? qxs_store_vec(s, keys[i]) : NULL;
        if (!x) dist[i] = INFINITY;
        else if (metric == 0) dist[i] = qx_l2sqr(q, x, s->d);
        else dist[i] = -qx_dot(q, x, s->d);
    }
}

/* ---- checkpoints ------------------------------------------------------------ */

static int write_manifest(const qxs_store *s, const qxs_seg *extra, uint32_t next_seg, uint64_t lsn,
                          uint64_t index_gen) {
    qxs_manifest m = {.d = s->d, .lsn = lsn, .next_seg = next_seg, .index_gen = index_gen};
    m.nseg = s->nsegs + (extra != NULL);
    m.segs = qx_calloc(m.nseg ? m.nseg : 1, sizeof *m.segs);
    if (!m.segs) return qx_error_set(QX_ENOMEM, "manifest");
    for (size_t i = 0; i < s->nsegs; i++)
        m.segs[i] = (qxs_manifest_seg){s->segs[i]->no, s->segs[i]->n, s->segs[i]->del_gen, s->segs[i]->codes_gen};
    if (extra) m.segs[s->nsegs] = (qxs_manifest_seg){extra->no, extra->n, extra->del_gen, extra->codes_gen};
    int rc = qxs_manifest_write(s->dir, &m);
    qx_free(m.segs);
    return rc;
}

int qxs_store_ckpt_prepare(qxs_store *s, uint64_t lsn, uint64_t index_gen, const qx_ivf *ivf, qxs_ckpt *ck) {
    memset(ck, 0, sizeof *ck);
    int rc = 0;
    uint64_t b = 0;
    uint32_t next = s->mut.no;
    if (s->mut.n > 0) {
        if (s->mut.no >= QXS_SEG_MAX_NO) return qx_error_set(QX_ELIMIT, "segment numbers exhausted");
        if ((rc = qxs_seg_write(s->dir, &s->mut, &b))) return rc;
        ck->bytes += b;
        if ((rc = qxs_seg_open(s->dir, s->mut.no, s->d, s->mut.n, 0, s->on_disk, &ck->sealed))) return rc;
        memcpy(ck->sealed->dead, s->mut.dead, (s->mut.n + 63) / 64 * 8);
        ck->sealed->ndead = s->mut.ndead;
        ck->sealed->del_dirty = s->mut.ndead > 0;
        next = s->mut.no + 1;
    }
    for (size_t i = 0; !rc && i <= s->nsegs; i++) {
        qxs_seg *g = i < s->nsegs ? s->segs[i] : ck->sealed;
        if (!g || !g->del_dirty) continue;
        rc = qxs_seg_save_dead(g, s->dir, lsn, &b);
        ck->bytes += b;
    }
    /* codes: written once per segment and model (a file of a failed
     * checkpoint is valid and simply named by the next manifest) */
    for (size_t i = 0; !rc && ivf && index_gen && i <= s->nsegs; i++) {
        qxs_seg *g = i < s->nsegs ? s->segs[i] : ck->sealed;
        /* a new model (index_gen not yet committed) needs every segment's
         * codes again, whatever a failed earlier attempt left */
        if (!g || (g->codes_gen == index_gen && index_gen == s->index_gen)) continue;
        if (!(rc = qxs_codes_write(s->dir, g->no, index_gen, g->n, ivf, &b))) {
            g->codes_gen = index_gen;
            ck->bytes += b;
        }
    }
    if (!rc) rc = write_manifest(s, ck->sealed, next, lsn, index_gen);
    if (rc) qxs_store_ckpt_abort(s, ck);
    else ck->bytes += 48 + 32 * (s->nsegs + 1) + 4;
    return rc;
}

void qxs_store_ckpt_abort(qxs_store *s, qxs_ckpt *ck) {
    (void)s;
    if (ck->sealed) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", ck->sealed->path);
        qxs_seg_close(ck->sealed);
        unlink(path);
    }
    ck->sealed = NULL;
}

void qxs_store_ckpt_commit(qxs_store *s, qxs_ckpt *ck, uint64_t lsn, uint64_t index_gen) {
    if (ck->sealed) {
        if (segs_push(s, ck->sealed)) {
            /* cannot grow the list (out of memory): keep serving from the
             * mutable copy; the next open reads the sealed file */
            qxs_seg_close(ck->sealed);
        } else {
            uint32_t no = s->mut.no;
            qxs_mseg_free(&s->mut);
            qxs_mseg_init(&s->mut, no + 1, s->d);
        }
        ck->sealed = NULL;
    }
    s->lsn = lsn;
    s->index_gen = index_gen;
}

static int named(const qxs_store *s, const char *f) {
    unsigned no;
    unsigned long long gen;
    char tail[8];
    if (sscanf(f, "seg-%8u.dat%1s", &no, tail) == 1 && strlen(f) == 16) {
        if (no == s->mut.no) return 0;
        return seg_of(s, no) != NULL;
    }
    if (sscanf(f, "seg-%8u.del.%llu%1s", &no, &gen, tail) == 2) {
        const qxs_seg *g = seg_of(s, no);
        return g && g->del_gen == gen;
    }
    if (sscanf(f, "seg-%8u.codes.%llu%1s", &no, &gen, tail) == 2) {
        const qxs_seg *g = seg_of(s, no);
        return g && g->codes_gen == gen;
    }
    if (sscanf(f, "index-%llu.qx%1s", &gen, tail) == 1) return gen == s->index_gen;
    return 1; /* not ours to judge */
}

void qxs_store_gc(const qxs_store *s) {
    DIR *d = opendir(s->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *f = e->d_name;
        int tmp = (!strncmp(f, "seg-", 4) || !strncmp(f, "index-", 6)) && strstr(f, ".tmp") != NULL;
        if (tmp || ((!strncmp(f, "seg-", 4) || !strncmp(f, "index-", 6)) && !named(s, f))) {
            char path[PATH_MAX + 260];
            snprintf(path, sizeof path, "%s/%s", s->dir, f);
            unlink(path);
        }
    }
    closedir(d);
}

void qxs_store_memory(const qxs_store *s, qxs_store_mem *m) {
    memset(m, 0, sizeof *m);
    m->mutable_bytes = qxs_mseg_bytes(&s->mut);
    for (size_t i = 0; i < s->nsegs; i++) {
        const qxs_seg *g = s->segs[i];
        m->tombstone_bytes += ((g->n + 63) / 64 + 1) * 8;
        if (g->vecs_ram) m->raw_ram_bytes += g->n * g->d * sizeof(float);
        m->disk_bytes += g->map_len;
    }
}

int qxs_store_codes_load(const qxs_store *s, qx_ivf *ivf, qxs_rowmap *rm) {
    qxs_codes_src *src = qx_calloc(s->nsegs + 1, sizeof *src);
    if (!src) return qx_error_set(QX_ENOMEM, "codes of %zu segments", s->nsegs);
    size_t k = 0;
    for (size_t i = 0; i < s->nsegs; i++) {
        const qxs_seg *g = s->segs[i];
        if (g->codes_gen) src[k++] = (qxs_codes_src){.no = g->no, .gen = g->codes_gen, .n = g->n, .dead = g->dead};
    }
    int rc = qxs_codes_load_all(s->dir, src, k, ivf, rm);
    qx_free(src);
    return rc;
}

/* ---- merges -------------------------------------------------------------------- */

int qxs_store_merge_prepare(qxs_store *s, const uint32_t *nos, size_t k, uint32_t new_no, qxs_merge *mg) {
    memset(mg, 0, sizeof *mg);
    size_t live = 0;
    for (size_t i = 0; i < k; i++) {
        const qxs_seg *g = seg_of(s, nos[i]);
        if (!g) return qx_error_set(QX_EINVAL, "merge: no segment %u", nos[i]);
        live += g->n - g->ndead;
        /* never copy corrupt bytes under a fresh checksum */
        int rc = qxs_seg_verify(g);
        if (rc) return rc;
    }
    qxs_mseg m;
    qxs_mseg_init(&m, new_no, s->d);
    mg->src_no = qx_malloc(k * sizeof *mg->src_no);
    mg->old_keys = qx_malloc((live + 1) * sizeof *mg->old_keys);
    mg->new_keys = qx_malloc((live + 1) * sizeof *mg->new_keys);
    int rc = (!mg->src_no || !mg->old_keys || !mg->new_keys) ? qx_error_set(QX_ENOMEM, "merge of %zu rows", live) : 0;
    size_t pb = 0;
    for (size_t i = 0; !rc && i < k; i++) {
        const qxs_seg *g = seg_of(s, nos[i]);
        pb += g->pblob_len;
    }
    if (!rc) rc = qxs_mseg_reserve(&m, live, pb);
    for (size_t i = 0; !rc && i < k; i++) {
        const qxs_seg *g = seg_of(s, nos[i]);
        mg->src_no[mg->nsrc++] = nos[i];
        for (size_t r = 0; r < g->n; r++) {
            if (qxs_bit_get(g->dead, r)) continue;
            qxs_pid id;
            uint32_t plen;
            qxs_seg_pid(g, (uint32_t)r, &id);
            const uint8_t *p = qxs_seg_payload(g, (uint32_t)r, &plen);
            uint32_t row = qxs_mseg_append(&m, &id, qxs_seg_vec(g, (uint32_t)r), p, plen);
            mg->old_keys[mg->nmoved] = qxs_rowkey(g->no, (uint32_t)r);
            mg->new_keys[mg->nmoved++] = qxs_rowkey(new_no, row);
        }
    }
    if (!rc) rc = qxs_seg_write(s->dir, &m, &mg->bytes);
    if (!rc) rc = qxs_seg_open(s->dir, new_no, s->d, m.n, 0, s->on_disk, &mg->out);
    qxs_mseg_free(&m);
    if (rc) {
        char path[PATH_MAX];
        qxs_seg_name(path, sizeof path, s->dir, new_no);
        unlink(path);
        qxs_store_merge_free(mg);
    }
    return rc;
}

void qxs_store_merge_commit(qxs_store *s, qxs_merge *mg) {
    /* rows killed since prepare die in the output too */
    for (size_t i = 0; i < mg->nmoved; i++)
        if (!qxs_store_live(s, mg->old_keys[i])) qxs_seg_kill(mg->out, qxs_rowkey_row(mg->new_keys[i]));
    size_t w = 0;
    for (size_t i = 0; i < s->nsegs; i++) {
        int src = 0;
        for (size_t j = 0; j < mg->nsrc && !src; j++) src = s->segs[i]->no == mg->src_no[j];
        if (src) qxs_seg_close(s->segs[i]);
        else s->segs[w++] = s->segs[i];
    }
    /* keep the list sorted by number (the output's number is the largest) */
    s->segs[w++] = mg->out;
    s->nsegs = w;
    for (size_t i = w - 1; i > 0 && s->segs[i - 1]->no > s->segs[i]->no; i--) {
        qxs_seg *t = s->segs[i];
        s->segs[i] = s->segs[i - 1];
        s->segs[i - 1] = t;
    }
    mg->out = NULL;
}

void qxs_store_merge_free(qxs_merge *mg) {
    if (mg->out) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", mg->out->path);
        qxs_seg_close(mg->out);
        unlink(path);
    }
    qx_free(mg->src_no);
    qx_free(mg->old_keys);
    qx_free(mg->new_keys);
    memset(mg, 0, sizeof *mg);
}

static int cmp_live(const void *a, const void *b) {
    const size_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

size_t qxs_store_merge_pick(const qxs_store *s, size_t min_segs, size_t max_bytes, uint32_t *nos, size_t cap) {
    if (s->nsegs < min_segs || s->nsegs < 2) return 0;
    size_t (*v)[2] = qx_malloc(s->nsegs * sizeof *v);
    if (!v) return 0;
    for (size_t i = 0; i < s->nsegs; i++) {
        v[i][0] = (s->segs[i]->n - s->segs[i]->ndead) * s->d * sizeof(float);
        v[i][1] = s->segs[i]->no;
    }
    qsort(v, s->nsegs, sizeof *v, cmp_live);
    size_t k = 0, bytes = 0;
    for (size_t i = 0; i < s->nsegs && k < cap; i++) {
        if (k >= 2 && bytes + v[i][0] > max_bytes) break;
        bytes += v[i][0];
        nos[k++] = (uint32_t)v[i][1];
    }
    qx_free(v);
    if (k < 2 || bytes > max_bytes) return 0;
    for (size_t i = 1; i < k; i++) /* ascending numbers */
        for (size_t j = i; j > 0 && nos[j - 1] > nos[j]; j--) {
            uint32_t t = nos[j];
            nos[j] = nos[j - 1];
            nos[j - 1] = t;
        }
    return k;
}

/* ---- the format before segments (upgrade) ----------------------------------- */


int qxs_legacy_snapshot_read(const char *path, size_t d, int64_t **ids_out, float **vecs_out, size_t *n_out,
                             uint64_t *lsn) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return qx_error_set(QX_ENOTFOUND, "%s: no snapshot", path);
        return qx_error_set(QX_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    uint8_t hdr[32];
    if (fstat(fd, &st) != 0 || qxs_read_full(fd, hdr, 32) != 0 || memcmp(hdr, SNAP_MAGIC, 8) != 0) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: not a qinx snapshot (bad magic or truncated header)", path);
    }
    uint32_t d32;
    uint64_t n64;
    memcpy(&d32, hdr + 8, 4);
    memcpy(&n64, hdr + 16, 8);
    memcpy(lsn, hdr + 24, 8);
    size_t vbytes, total;
    if (d32 != d || n64 > UINT32_MAX || !qx_size_mul3(n64, d, 4, &vbytes) || !qx_size_add(vbytes, 36 + 8 * n64, &total) ||
        total != (size_t)st.st_size) {
        close(fd);
        return qx_error_set(QX_EFORMAT, "%s: header says d=%u n=%llu, file has %lld bytes (expected d=%zu)", path, d32,
                        (unsigned long long)n64, (long long)st.st_size, d);
    }
    int64_t *ids = qx_malloc(n64 * 8 + 8);
    float *vecs = qx_aligned_alloc(vbytes);
    uint32_t crc_file;
    int rc = 0;
    if (!ids || !vecs) rc = qx_error_set(QX_ENOMEM, "%s: %llu points", path, (unsigned long long)n64);
    else if (qxs_read_full(fd, ids, n64 * 8) || qxs_read_full(fd, vecs, vbytes) || qxs_read_full(fd, &crc_file, 4))
        rc = qx_error_set(QX_EFORMAT, "%s: truncated", path);
    close(fd);
    if (!rc) {
        uint32_t crc = qx_crc32(0, hdr + 8, 24);
        crc = qx_crc32(crc, ids, n64 * 8);
        crc = qx_crc32(crc, vecs, vbytes);
        if (crc != crc_file) rc = qx_error_set(QX_EFORMAT, "%s: checksum mismatch", path);
    }
    for (size_t i = 0; !rc && i < n64; i++)
        if (ids[i] < 0) rc = qx_error_set(QX_EFORMAT, "%s: negative id at row %zu", path, i);
    if (rc) {
        qx_free(ids);
        qx_aligned_free(vecs);
        return rc;
    }
    *ids_out = ids;
    *vecs_out = vecs;
    *n_out = n64;
    return 0;
}

void qxs_topk_push(qxs_topk *h, float dist, int64_t id) {
    /* max-heap on dist: the root is the worst kept entry */
    float *D = h->dist;
    int64_t *I = h->ids;
    if (h->n < h->k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (D[p] >= dist) break;
            D[i] = D[p];
            I[i] = I[p];
            i = p;
        }
        D[i] = dist;
        I[i] = id;
        return;
    }
    if (h->k == 0 || !(dist < D[0])) return;
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        float md = dist;
        if (l < n && D[l] > md) m = l, md = D[l];
        if (r < n && D[r] > md) m = r, md = D[r];
        if (m == i) break;
        D[i] = D[m];
        I[i] = I[m];
        i = m;
    }
    D[i] = dist;
    I[i] = id;
}

size_t qxs_topk_finish(qxs_topk *h) {
    size_t n = h->n;
    /* heap sort in place: repeatedly move the max to the end */
    for (size_t end = n; end > 1; end--) {
        float d = h->dist[end - 1];
        int64_t id = h->ids[end - 1];
        h->dist[end - 1] = h->dist[0];
        h->ids[end - 1] = h->ids[0];
        size_t i = 0, m2 = end - 1;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            float md = d;
            if (l < m2 && h->dist[l] > md) m = l, md = h->dist[l];
            if (r < m2 && h->dist[r] > md) m = r, md = h->dist[r];
            if (m == i) break;
            h->dist[i] = h->dist[m];
            h->ids[i] = h->ids[m];
            i = m;
        }
        h->dist[i] = d;
        h->ids[i] = id;
    }
    for (size_t i = n; i < h->k; i++) {
        h->dist[i] = INFINITY;
        h->ids[i] = -1;
    }
    return n;
}

