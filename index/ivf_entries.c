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
