/* server/rowmap.c — row key -> IVF location, one dense array per segment
 * (rowmap.h).
 *
 * Decisions:
 * 1. Arrays grow by doubling (the mutable segment's rows arrive one by
 *    one) or to an exact size when the row count is known (segments opened
 *    at start, a rebuild's encode pass).
 * 2. Segments are few (merges fold them): finding one is a binary search.
 */
#include <string.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "rowmap.h"
#include "segment.h"

#define ABSENT UINT64_MAX

int qxs_rowmap_new(qxs_rowmap **out) {
    *out = qx_calloc(1, sizeof **out);
    return *out ? 0 : qx_error_set(QX_ENOMEM, "row map");
}

void qxs_rowmap_free(qxs_rowmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) qx_free(m->v[i].loc);
    qx_free(m->v);
    qx_free(m);
}

static size_t find(const qxs_rowmap *m, uint32_t no) { /* first index with v[i].no >= no */
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->v[mid].no < no) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static qxs_rowmap_seg *seg_get(qxs_rowmap *m, uint32_t no, int create) {
    size_t i = find(m, no);
    if (i < m->n && m->v[i].no == no) return &m->v[i];
    if (!create) return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        qxs_rowmap_seg *v = qx_realloc(m->v, cap * sizeof *v);
        if (!v) return NULL;
        m->v = v;
        m->cap = cap;
    }
    memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof *m->v);
    m->n++;
    m->v[i] = (qxs_rowmap_seg){.no = no};
    return &m->v[i];
}

static int grow(qxs_rowmap_seg *g, size_t rows) {
    if (rows <= g->cap) return 0;
    uint64_t *loc = qx_realloc(g->loc, rows * sizeof *loc);
    if (!loc) return qx_error_set(QX_ENOMEM, "row map of segment %u: %zu rows", g->no, rows);
    qxs_hint_huge_pages(loc, rows * sizeof *loc); /* 80 MB at 10M rows, filled at once */
    for (size_t r = g->cap; r < rows; r++) loc[r] = ABSENT;
    g->loc = loc;
    g->cap = rows;
    return 0;
}

int qxs_rowmap_reserve(qxs_rowmap *m, uint32_t no, size_t rows) {
    qxs_rowmap_seg *g = seg_get(m, no, 1);
    return g ? grow(g, rows) : qx_error_set(QX_ENOMEM, "row map");
}

int qxs_rowmap_get(const qxs_rowmap *m, int64_t key, uint64_t *loc) {
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    size_t i = find(m, no);
    if (key < 0 || i >= m->n || m->v[i].no != no || row >= m->v[i].cap || m->v[i].loc[row] == ABSENT) return 0;
    *loc = m->v[i].loc[row];
    return 1;
}

int qxs_rowmap_put(qxs_rowmap *m, int64_t key, uint64_t loc) {
    if (key < 0) return qx_error_set(QX_EINVAL, "row map: negative key");
    uint32_t row = qxs_rowkey_row(key);
    qxs_rowmap_seg *g = seg_get(m, qxs_rowkey_seg(key), 1);
    if (!g) return qx_error_set(QX_ENOMEM, "row map");
    if (row >= g->cap) {
        size_t want = g->cap ? 2 * g->cap : 1024;
        int rc = grow(g, want > (size_t)row + 1 ? want : (size_t)row + 1);
        if (rc) return rc;
    }
    /* in bulk mode (qx_ivf_add_records puts distinct rows of reserved segments
     * from several threads) nothing but the slot is written; counted after */
    if (!m->bulk && g->loc[row] == ABSENT) g->count++;
    g->loc[row] = loc;
    return 0;
}

void qxs_rowmap_del(qxs_rowmap *m, int64_t key) {
    uint32_t no = qxs_rowkey_seg(key), row = qxs_rowkey_row(key);
    size_t i = find(m, no);
    if (key < 0 || i >= m->n || m->v[i].no != no || row >= m->v[i].cap || m->v[i].loc[row] == ABSENT) return;
    m->v[i].loc[row] = ABSENT;
    if (--m->v[i].count == 0) { /* the segment left the index (merged away) */
        qx_free(m->v[i].loc);
        memmove(m->v + i, m->v + i + 1, (m->n - i - 1) * sizeof *m->v);
        m->n--;
    }
}

void qxs_rowmap_recount(qxs_rowmap *m) {
    for (size_t i = 0; i < m->n; i++) {
        size_t c = 0;
        for (size_t r = 0; r < m->v[i].cap; r++) c += m->v[i].loc[r] != ABSENT;
        m->v[i].count = c;
    }
}

size_t qxs_rowmap_bytes(const qxs_rowmap *m) {
    size_t b = m ? m->cap * sizeof *m->v : 0;
    for (size_t i = 0; m && i < m->n; i++) b += m->v[i].cap * sizeof(uint64_t);
    return b;
}

static int loc_get(void *ctx, int64_t id, uint64_t *loc) { return qxs_rowmap_get(ctx, id, loc); }
static int loc_put(void *ctx, int64_t id, uint64_t loc) { return qxs_rowmap_put(ctx, id, loc); }
static void loc_del(void *ctx, int64_t id) { qxs_rowmap_del(ctx, id); }

qx_ivf_locator qxs_rowmap_locator(qxs_rowmap *m) {
    return (qx_ivf_locator){.get = loc_get, .put = loc_put, .del = loc_del, .ctx = m};
}

int qxs_rowmap_attach(qx_ivf *ivf, qxs_rowmap **out) {
    qxs_rowmap *m;
    int rc = qxs_rowmap_new(&m);
    if (rc) return rc;
    qx_ivf_locator loc = qxs_rowmap_locator(m);
    if ((rc = qx_ivf_set_locator(ivf, &loc))) {
        qxs_rowmap_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
