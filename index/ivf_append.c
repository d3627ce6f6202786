/* index/ivf_append.c — qx_ivf_append: the entries of one index appended to
 * another that holds the same trained model. This is how shards of a
 * distributed build become one index (`qinx-mpi build --mpi --merge`,
 * `qinx merge`).
 *
 * Decisions:
 * 1. "Same trained model" is checked, not assumed: dimension, metric, code
 *    size, nlist, the centroids, the norm levels and the serialized
 *    quantizer must be equal byte for byte. Codes of another model would
 *    decode to other vectors without any error.
 * 2. Entries are appended list by list in the source's order, so appending
 *    the shards of rows [0, a), [a, b), … in that order reproduces the lists
 *    of a single build over all rows (which adds rows in file order).
 * 3. Every id of src is checked against dst before anything moves: a
 *    duplicate fails with dst unchanged.
 */
#include <string.h>

#include "ivf_impl.h"
#include "shard_impl.h"

int qx__ivf_same_model(const qx_ivf *a, const qx_ivf *b) {
    if (a->d != b->d || a->opts.metric != b->opts.metric || a->code_size != b->code_size ||
        a->nlist != b->nlist || a->M != b->M || a->fs_pairs != b->fs_pairs)
        return qx__fail(QX_EINVAL, "the indexes differ in dimension, metric, code size or nlist "
                        "(d %zu/%zu, code %zu/%zu, nlist %zu/%zu)", a->d, b->d, a->code_size, b->code_size,
                        a->nlist, b->nlist);
    if (memcmp(a->centroids, b->centroids, sizeof(float) * a->nlist * a->d) ||
        memcmp(a->norm_levels, b->norm_levels, sizeof a->norm_levels))
        return qx__fail(QX_EINVAL, "the indexes were trained apart (coarse centroids or norm levels differ)");
    uint8_t *qa = NULL, *qb = NULL;
    size_t la = 0, lb = 0;
    int rc = qx_quantizer_serialize(a->quant, &qa, &la);
    if (rc == 0) rc = qx_quantizer_serialize(b->quant, &qb, &lb);
    if (rc == 0 && (la != lb || memcmp(qa, qb, la)))
        rc = qx__fail(QX_EINVAL, "the indexes were trained apart (their quantizers differ)");
    qx_free(qa);
    qx_free(qb);
    return rc;
}

int qx_ivf_append(qx_ivf *dst, const qx_ivf *src) {
    if (!dst || !src) return qx__fail(QX_EINVAL, "ivf_append: NULL index");
    if (!dst->trained || !src->trained) return qx__fail(QX_ESTATE, "ivf_append: index is not trained");
    int rc = qx__ivf_same_model(dst, src);
    if (rc) return rc;
    for (size_t l = 0; l < src->nlist; l++)
        for (size_t i = 0; i < src->lists[l].size; i++) {
            uint64_t loc;
            if (qx__map_get(dst, src->lists[l].ids[i], &loc))
                return qx__fail(QX_EEXIST, "ivf_append: id %lld is in both indexes", (long long)src->lists[l].ids[i]);
        }
    if ((rc = qx__map_reserve(dst, dst->ntotal + src->ntotal))) return rc;
    uint8_t code[QX_MAX_STEPS + 8];
    size_t cs = dst->code_size;
    for (size_t l = 0; rc == 0 && l < src->nlist; l++) {
        const qx__ivf_list *sl = &src->lists[l];
        qx__ivf_list *dl = &dst->lists[l];
        for (size_t i = 0; rc == 0 && i < sl->size; i++) {
            if (src->fs_pairs) qx__ivf_fs_get(src, sl, i, code);
            else memcpy(code, sl->codes + i * cs, cs);
            int64_t id = sl->ids[i];
            rc = dst->fs_pairs ? qx__ivf_fs_push(dst, dl, code, id) : qx__ivf_list_push(dl, cs, code, id);
            if (rc == 0) rc = qx__map_put(dst, id, qx__loc((uint32_t)l, (uint32_t)(dl->size - 1)));
            if (rc == 0) dst->ntotal++;
        }
    }
    return rc;
}
