/* index/ivf_entries.c — entries as stored (list + code bytes) in and out of
 * an index, a caller-kept id map (qx_ivf_locator), and trimming list slack.
 *
 * Why: a server that writes each segment's codes once, when the segment is
 * sealed, needs the codes of given ids (qx_ivf_get_entries) and, at start,
 * to put them back without encoding again (qx_ivf_add_entries). And when its
 * ids are dense row numbers it can hold the id -> location map in 8 bytes a
 * row instead of the 34-68 bytes a point of the index's hash map.
 *
 * Decisions:
 * 1. add_entries checks every list number before it changes anything, so a
 *    corrupt entry file adds nothing.
 * 2. trim copies each list into an allocation of its exact size: lists grow
 *    by doubling, so after a bulk add up to half the code memory is slack.
 */
#include <omp.h>
#include <string.h>

#include "ivf_impl.h"

int qx_ivf_set_locator(qx_ivf *ivf, const qx_ivf_locator *loc) {
    if (!ivf || !loc || !loc->get || !loc->put || !loc->del)
        return qx__fail(QX_EINVAL, "ivf_set_locator: NULL argument");
    for (size_t l = 0; ivf->lists && l < ivf->nlist; l++) {
        const qx__ivf_list *L = &ivf->lists[l];
        for (size_t i = 0; i < L->size; i++) {
            int rc = loc->put(loc->ctx, L->ids[i], qx__loc((uint32_t)l, (uint32_t)i));
            if (rc) return qx__wrap(rc, "ivf_set_locator: entry %zu of list %zu", i, l);
        }
    }
    qx__idmap_free(&ivf->ids);
    ivf->loc = *loc;
    return 0;
}

int qx_ivf_get_entries(const qx_ivf *ivf, const int64_t *ids, size_t n, uint32_t *lists, uint8_t *codes) {
    if (!ivf || (n && (!ids || !lists || !codes))) return qx__fail(QX_EINVAL, "ivf_get_entries: NULL argument");
    size_t cs = ivf->code_size;
    for (size_t i = 0; i < n; i++) {
        uint64_t loc;
        if (!ivf->trained || !qx__map_get(ivf, ids[i], &loc)) {
            lists[i] = UINT32_MAX;
            memset(codes + i * cs, 0, cs);
            continue;
        }
        const qx__ivf_list *L = &ivf->lists[loc >> 32];
        size_t off = (uint32_t)loc;
        lists[i] = (uint32_t)(loc >> 32);
        if (ivf->fs_pairs) qx__ivf_fs_get(ivf, L, off, codes + i * cs);
        else memcpy(codes + i * cs, L->codes + off * cs, cs);
    }
    return 0;
}

int qx_ivf_add_entries(qx_ivf *ivf, const uint32_t *lists, const uint8_t *codes, const int64_t *ids, size_t n) {
    if (!ivf || (n && (!ids || !lists || !codes))) return qx__fail(QX_EINVAL, "ivf_add_entries: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_add_entries: index is not trained");
    size_t cs = ivf->code_size, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (lists[i] == UINT32_MAX) continue;
        if (lists[i] >= ivf->nlist)
            return qx__fail(QX_EINVAL, "ivf_add_entries: entry %zu names list %u of %zu", i, lists[i], ivf->nlist);
        count++;
    }
    if (ivf->ntotal + count > ((size_t)1 << 40)) return qx__fail(QX_ELIMIT, "ivf_add_entries: too many entries");
    int rc = qx__map_reserve(ivf, ivf->ntotal + count);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (lists[i] == UINT32_MAX) continue;
        uint64_t loc;
        if (qx__map_get(ivf, ids[i], &loc)) { /* replace, as qx_ivf_add does */
            const int64_t one = ids[i];
            qx_ivf_remove(ivf, &one, 1, NULL);
        }
        qx__ivf_list *L = &ivf->lists[lists[i]];
        if (L->size >= UINT32_MAX) return qx__fail(QX_ELIMIT, "ivf_add_entries: list %u is full", lists[i]);
        rc = ivf->fs_pairs ? qx__ivf_fs_push(ivf, L, codes + i * cs, ids[i])
                           : qx__ivf_list_push(L, cs, codes + i * cs, ids[i]);
        if (rc == 0) rc = qx__map_put(ivf, ids[i], qx__loc(lists[i], (uint32_t)(L->size - 1)));
        if (rc == 0) ivf->ntotal++;
    }
    return rc;
}

int qx_ivf_reserve_lists(qx_ivf *ivf, const size_t *add) {
    if (!ivf || !add) return qx__fail(QX_EINVAL, "ivf_reserve_lists: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_reserve_lists: index is not trained");
    if (ivf->fs_pairs || !ivf->lists) return 0;
    size_t cs = ivf->code_size;
    for (size_t l = 0; l < ivf->nlist; l++) {
        qx__ivf_list *L = &ivf->lists[l];
        size_t want, bytes, ib;
        if (!add[l]) continue;
        if (!qx__add(L->size, add[l], &want) || !qx__mul(want, cs, &bytes) || !qx__mul(want, sizeof(int64_t), &ib))
            return qx__fail(QX_ENOMEM, "ivf_reserve_lists: list %zu", l);
        if (want <= L->cap) continue;
        uint8_t *codes = qx__aligned_alloc(bytes);
        int64_t *ids = codes ? qx__realloc(L->ids, ib) : NULL;
        if (!codes || !ids) {
            qx__aligned_free(codes);
            return qx__fail(QX_ENOMEM, "ivf_reserve_lists: list %zu of %zu entries", l, want);
        }
        if (L->size) memcpy(codes, L->codes, L->size * cs);
        qx__aligned_free(L->codes);
        L->codes = codes;
        L->ids = ids;
        L->cap = want;
    }
    return 0;
}

static uint32_t rec_list(const uint8_t *rec, size_t stride, size_t r) {
    uint32_t l;
    memcpy(&l, rec + r * stride, 4);
    return l;
}
static int skipped(const uint64_t *skip, size_t r) { return skip && ((skip[r >> 6] >> (r & 63)) & 1u); }

int qx_ivf_add_records(qx_ivf *ivf, const uint8_t *rec, size_t stride, size_t n, int64_t id0,
                       const uint64_t *skip, int threads) {
    if (!ivf || (n && !rec)) return qx__fail(QX_EINVAL, "ivf_add_records: NULL argument");
    if (!ivf->trained) return qx__fail(QX_ESTATE, "ivf_add_records: index is not trained");
    size_t cs = ivf->code_size, nlist = ivf->nlist;
    if (stride < 4 + cs || id0 < 0 || (uint64_t)n > (uint64_t)INT64_MAX - (uint64_t)id0)
        return qx__fail(QX_EINVAL, "ivf_add_records: stride %zu (at least %zu), first id %lld, %zu records", stride,
                        4 + cs, (long long)id0, n);
    if (threads <= 0) threads = qx__num_threads();
    if (ivf->fs_pairs || !ivf->loc.put) threads = 1; /* fs blocks and our own map are not shared-safe */
    if ((size_t)threads > nlist) threads = (int)nlist;
    /* pass 1: list numbers checked and entries counted per list, rows split across threads */
    size_t *cnt = qx__calloc((size_t)threads * nlist + 1, sizeof *cnt);
    if (!cnt) return qx__fail(QX_ENOMEM, "ivf_add_records: counts");
    size_t bad = SIZE_MAX;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t *c = cnt + (size_t)t * nlist, a = n / (size_t)nt * (size_t)t, b = t == nt - 1 ? n : a + n / (size_t)nt;
        for (size_t r = a; r < b; r++) {
            uint32_t l = rec_list(rec, stride, r);
            if (l == UINT32_MAX || skipped(skip, r)) continue;
            if (l >= nlist) {
#pragma omp critical(qx_add_records_bad)
                if (r < bad) bad = r;
                break;
            }
            c[l]++;
        }
    }
    if (bad != SIZE_MAX) {
        qx__free(cnt);
        return qx__fail(QX_EINVAL, "ivf_add_records: record %zu names list %u of %zu", bad, rec_list(rec, stride, bad),
                        nlist);
    }
    size_t total = 0;
    for (int t = 1; t < threads; t++)
        for (size_t l = 0; l < nlist; l++) cnt[l] += cnt[(size_t)t * nlist + l];
    for (size_t l = 0; l < nlist; l++) total += cnt[l];
    int rc = ivf->ntotal + total > ((size_t)1 << 40) ? qx__fail(QX_ELIMIT, "ivf_add_records: too many entries")
                                                      : qx_ivf_reserve_lists(ivf, cnt);
    for (size_t l = 0; !rc && l < nlist; l++)
        if (ivf->lists[l].size + cnt[l] > UINT32_MAX) rc = qx__fail(QX_ELIMIT, "ivf_add_records: list %zu is full", l);
    qx__free(cnt);
    if (rc) return rc;
    /* pass 2: thread t fills the lists l with l % threads == t, in record order */
    int err = 0;
    size_t added = 0;
#pragma omp parallel num_threads(threads) reduction(+ : added)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads(), my = 0;
        for (size_t r = 0; r < n && !my; r++) {
            uint32_t l = rec_list(rec, stride, r);
            if (l == UINT32_MAX || (int)(l % (uint32_t)nt) != t || skipped(skip, r)) continue;
            int64_t id = id0 + (int64_t)r;
            uint64_t loc;
            qx__ivf_list *L = &ivf->lists[l];
            const uint8_t *code = rec + r * stride + 4;
            if (qx__map_get(ivf, id, &loc)) my = QX_EINVAL;
            else if (ivf->fs_pairs) my = qx__ivf_fs_push(ivf, L, code, id);
            else if (L->size < L->cap) {
                memcpy(L->codes + L->size * cs, code, cs);
                L->ids[L->size++] = id;
            } else my = QX_ESTATE; /* reserved above: cannot happen */
            if (!my) my = qx__map_put(ivf, id, qx__loc(l, (uint32_t)(L->size - 1)));
            if (!my) added++;
        }
        if (my) {
#pragma omp critical(qx_add_records_err)
            if (!err) err = my;
        }
    }
    ivf->ntotal += added;
    if (err == QX_EINVAL) return qx__fail(QX_EINVAL, "ivf_add_records: an id in %lld.. is already held", (long long)id0);
    if (err) return qx__fail(err, "ivf_add_records: adding an entry failed");
    return 0;
}

int qx_ivf_trim(qx_ivf *ivf) {
    if (!ivf) return qx__fail(QX_EINVAL, "ivf_trim: NULL index");
    if (ivf->fs_pairs || !ivf->lists) return 0; /* fast-scan blocks: left as they are */
    size_t cs = ivf->code_size;
    for (size_t l = 0; l < ivf->nlist; l++) {
        qx__ivf_list *L = &ivf->lists[l];
        if (L->cap == L->size) continue;
        if (L->size == 0) {
            qx__aligned_free(L->codes);
            qx__free(L->ids);
            L->codes = NULL;
            L->ids = NULL;
            L->cap = 0;
            continue;
        }
        uint8_t *codes = qx__aligned_alloc(L->size * cs);
        int64_t *ids = codes ? qx__realloc(L->ids, L->size * sizeof *ids) : NULL;
        if (!codes || !ids) { /* nothing changed */
            qx__aligned_free(codes);
            return qx__fail(QX_ENOMEM, "ivf_trim: list %zu", l);
        }
        L->ids = ids;
        memcpy(codes, L->codes, L->size * cs);
        qx__aligned_free(L->codes);
        L->codes = codes;
        L->cap = L->size;
    }
    return 0;
}
