/* index/shard.c — a sharded index opened as one (qinx/shard.h): every shard
 * checked against the manifest, loaded, and searched; the per-shard top-k
 * merged.
 *
 * Decisions:
 * 1. A shard is verified before it is trusted: its file size and CRC-32 must
 *    be the manifest's (a shard rebuilt by another job, truncated by a full
 *    disk or flipped on a bad disk is refused, naming the shard and the
 *    manifest), then the index loader checks its own sections, then its
 *    header must agree with the manifest (dimension, metric, code size,
 *    nlist, rows) and its model with shard 0's (qx_ivf_append's check).
 * 2. The merge keeps, per query, the k best of the shards' k best: a heap is
 *    not needed for a few shards; a linear k-way merge of sorted lists is
 *    exact. Equal distances go by id, as within one index (ivf_search.c,
 *    decision 7), so the merged answer is the one index's, ties included.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "qinx/shard.h"
#include "shard_impl.h"

struct qx_sharded {
    qx_manifest man;
    qx_ivf **shards;
    size_t n;
};

void qx_sharded_free(qx_sharded *s) {
    if (!s) return;
    for (size_t i = 0; s->shards && i < s->n; i++) qx_ivf_free(s->shards[i]);
    qx__free(s->shards);
    qx_manifest_free(&s->man);
    qx__free(s);
}

size_t qx_sharded_count(const qx_sharded *s) { return s ? s->n : 0; }
const qx_ivf *qx_sharded_shard(const qx_sharded *s, size_t i) { return s && i < s->n ? s->shards[i] : NULL; }
const qx_manifest *qx_sharded_manifest(const qx_sharded *s) { return s ? &s->man : NULL; }

static int open_shard(const char *mpath, const qx_manifest *m, size_t i, qx_ivf **out) {
    const qx_shard_entry *e = &m->shards[i];
    char path[QX__PATH_CAP];
    int rc = qx_manifest_shard_path(mpath, e, path, sizeof path);
    if (rc) return qx__wrap(rc, "manifest '%s': shard %zu", mpath, i);
    uint64_t bytes;
    uint32_t crc;
    if ((rc = qx_file_crc32(path, &bytes, &crc)))
        return qx__wrap(rc == QX_ENOTFOUND ? QX_ENOTFOUND : rc, "manifest '%s': shard %zu (rows %llu..%llu) is missing or unreadable",
                        mpath, i, (unsigned long long)e->row_begin, (unsigned long long)e->row_end);
    if (bytes != e->bytes || crc != e->crc)
        return qx__fail(QX_EFORMAT,
                        "manifest '%s': shard %zu '%s' is corrupt or not the one the manifest names: "
                        "%llu bytes, CRC %08x; the manifest says %llu bytes, CRC %08x",
                        mpath, i, path, (unsigned long long)bytes, (unsigned)crc, (unsigned long long)e->bytes,
                        (unsigned)e->crc);
    if ((rc = qx_ivf_load(path, out))) return qx__wrap(rc, "manifest '%s': shard %zu", mpath, i);
    qx_ivf_info info;
    qx_ivf_get_info(*out, &info);
    if (info.d != m->d || info.metric != m->metric || info.code_size != m->code_size || info.nlist != m->nlist ||
        info.ntotal != e->row_end - e->row_begin) {
        qx_ivf_free(*out);
        *out = NULL;
        return qx__fail(QX_EFORMAT,
                        "manifest '%s': shard %zu '%s' does not match the manifest (d %zu, code %zu, nlist %zu, "
                        "%zu vectors; the manifest says d %zu, code %zu, nlist %zu, %llu rows)",
                        mpath, i, path, info.d, info.code_size, info.nlist, info.ntotal, m->d, m->code_size,
                        m->nlist, (unsigned long long)(e->row_end - e->row_begin));
    }
    return 0;
}

int qx_sharded_open(qx_sharded **out, const char *mpath) {
    if (!out || !mpath) return qx__fail(QX_EINVAL, "sharded_open: NULL argument");
    *out = NULL;
    qx_sharded *s = qx__calloc(1, sizeof *s);
    if (!s) return qx__fail(QX_ENOMEM, "sharded_open");
    int rc = qx_manifest_read(mpath, &s->man);
    if (rc == 0 && !(s->shards = qx__calloc(s->man.nshards, sizeof *s->shards)))
        rc = qx__fail(QX_ENOMEM, "sharded_open: %zu shards", s->man.nshards);
    for (size_t i = 0; rc == 0 && i < s->man.nshards; i++) {
        rc = open_shard(mpath, &s->man, i, &s->shards[i]);
        if (rc == 0) s->n = i + 1;
        if (rc == 0 && i > 0 && (rc = qx__ivf_same_model(s->shards[0], s->shards[i])))
            rc = qx__wrap(rc, "manifest '%s': shard %zu was not built with shard 0's model", mpath, i);
    }
    if (rc) {
        qx_sharded_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int qx_sharded_search(const qx_sharded *s, const float *q, size_t nq, size_t k, const qx_search_params *p,
                      float *dist, int64_t *ids) {
    if (!s || (nq && (!q || !dist || !ids))) return qx__fail(QX_EINVAL, "sharded_search: NULL argument");
    if (k == 0 || k > QX_MAX_K) return qx__fail(QX_EINVAL, "sharded_search: k=%zu outside 1..%d", k, QX_MAX_K);
    if (nq == 0) return 0;
    size_t nk, all;
    if (!qx__mul(nq, k, &nk) || !qx__mul(nk, s->n, &all)) return qx__fail(QX_ENOMEM, "sharded_search: sizes overflow");
    float *sd = qx__malloc(sizeof(float) * all);
    int64_t *si = qx__malloc(sizeof(int64_t) * all);
    size_t *pos = qx__calloc(s->n, sizeof(size_t));
    int rc = sd && si && pos ? 0 : qx__fail(QX_ENOMEM, "sharded_search: %zu results", all);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        rc = qx_ivf_search(s->shards[i], NULL, q, nq, k, p, sd + i * nk, si + i * nk);
        if (rc) rc = qx__wrap(rc, "searching shard %zu", i);
    }
    int ip = s->man.metric == QX_METRIC_IP;
    for (size_t qi = 0; rc == 0 && qi < nq; qi++) {
        memset(pos, 0, sizeof(size_t) * s->n);
        for (size_t r = 0; r < k; r++) {
            size_t best = SIZE_MAX;
            float bd = ip ? -INFINITY : INFINITY;
            int64_t bi = -1;
            for (size_t i = 0; i < s->n; i++) {
                if (pos[i] >= k) continue;
                size_t at = i * nk + qi * k + pos[i];
                if (si[at] < 0) continue;
                if (best == SIZE_MAX || (ip ? sd[at] > bd : sd[at] < bd) || (sd[at] == bd && si[at] < bi))
                    best = i, bd = sd[at], bi = si[at];
            }
            if (best == SIZE_MAX) {
                dist[qi * k + r] = ip ? -INFINITY : INFINITY;
                ids[qi * k + r] = -1;
                continue;
            }
            size_t at = best * nk + qi * k + pos[best]++;
            dist[qi * k + r] = sd[at];
            ids[qi * k + r] = si[at];
        }
    }
    qx__free(sd);
    qx__free(si);
    qx__free(pos);
    return rc;
}

int qx_sharded_merge(const char *mpath, qx_ivf **out) {
    if (!out || !mpath) return qx__fail(QX_EINVAL, "sharded_merge: NULL argument");
    *out = NULL;
    qx_manifest m;
    int rc = qx_manifest_read(mpath, &m);
    if (rc) return rc;
    qx_ivf *dst = NULL, *src = NULL;
    rc = open_shard(mpath, &m, 0, &dst);
    /* one shard in memory besides the result: peak = the merged index + the
     * largest shard */
    for (size_t i = 1; rc == 0 && i < m.nshards; i++) {
        rc = open_shard(mpath, &m, i, &src);
        if (rc == 0 && (rc = qx_ivf_append(dst, src)))
            rc = qx__wrap(rc, "manifest '%s': merging shard %zu", mpath, i);
        qx_ivf_free(src);
        src = NULL;
    }
    qx_manifest_free(&m);
    if (rc) {
        qx_ivf_free(dst);
        return rc;
    }
    *out = dst;
    return 0;
}
