/* bench/bench_eval.c — the one evaluation path every exhaustive method goes
 * through, plus recall metrics and exact ground truth.
 *
 * Decisions:
 * 1. Recall of a code is measured by exact search over its decodings: decode
 *    every base code, put the reconstructions in a FAISS IndexFlatL2, search
 *    the queries. This isolates the code's quality from any search-time
 *    approximation (FAISS ADC tables, qinx LUTs) and is identical for every
 *    method — the protocol of the QINCo paper's exhaustive tables.
 * 2. Decoding is done in chunks straight into the flat index, so peak memory
 *    is the base, the codes and one copy of the reconstructions (~130 MB for
 *    GloVe-100), not two.
 * 3. MSE is computed here from the same decodings (mean over base vectors of
 *    ||x - x̂||², summed over dimensions), not by each library's own routine.
 * 4. Recall definitions are those of `qinx search` (tools/util.c), so the
 *    figures of both commands agree on the same index.
 * 5. Ground truth without --gt: exact k=100 search with IndexFlatL2, written
 *    to DIR/gt-<dataset>-<nq>-<hash>.ivecs where the hash covers the paths,
 *    sizes and modification times of base and queries (and the --max-base
 *    row count); a later run with the same inputs reuses it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>

#include "bench_impl.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t file_key(uint64_t h, const char *path) {
    struct stat st;
    h = fnv(h, path, strlen(path));
    if (stat(path, &st) == 0) {
        int64_t v[2] = {(int64_t)st.st_size, (int64_t)st.st_mtime};
        h = fnv(h, v, sizeof v);
    }
    return h;
}

int bench_ground_truth(bench_run *r) {
    bench_data *D = r->data;
    const bench_cfg *cfg = r->cfg;
    size_t nq = D->queries.n, k = D->base.n < BENCH_GT_K ? D->base.n : BENCH_GT_K;
    uint64_t h = 1469598103934665603ull;
    h = file_key(h, cfg->base_path);
    h = file_key(h, cfg->query_path);
    h = fnv(h, &nq, sizeof nq);
    if (cfg->max_base) h = fnv(h, &D->base.n, sizeof D->base.n); /* a --max-base subset */
    char path[4096];
    snprintf(path, sizeof path, "%s/gt-%s-%zu-%016llx.ivecs", cfg->out_dir, D->dataset, nq,
             (unsigned long long)h);
    size_t gn = 0, gk = 0;
    /* --write-gt writes its own file: no second copy in the cache */
    const int cache = !cfg->write_gt;
    if (cache && access(path, R_OK) == 0 && qx_ivecs_read(path, 0, &D->gt, &gn, &gk) == 0) {
        if (gn == nq && gk == k) {
            D->gt_k = gk;
            bench_log(r, "ground truth: reusing %s", path);
            return 0;
        }
        qx_free(D->gt);
        D->gt = NULL;
    }
    bench_log(r, "ground truth: exact search of %zu queries over %zu base vectors (k=%zu) ...", nq,
              D->base.n, k);
    FaissIndexFlatL2 *flat = NULL;
    int frc = faiss_IndexFlatL2_new_with(&flat, (idx_t)D->d);
    if (frc) return bench_faiss_fail("IndexFlatL2", frc);
    if ((frc = faiss_Index_add((FaissIndex *)flat, (idx_t)D->base.n, D->base.data))) {
        faiss_Index_free((FaissIndex *)flat);
        return bench_faiss_fail("IndexFlatL2 add", frc);
    }
    float *dist = malloc(sizeof(float) * nq * k);
    int64_t *ids = malloc(sizeof(int64_t) * nq * k);
    int32_t *gt = malloc(sizeof(int32_t) * nq * k);
    int rc = 0;
    if (!dist || !ids || !gt) {
        rc = QX_ENOMEM;
        fprintf(stderr, "qinx bench: out of memory for ground truth\n");
    }
    /* blocks of queries, so a long computation shows progress */
    const size_t blk = 1000;
    for (size_t i = 0; rc == 0 && i < nq; i += blk) {
        size_t b = nq - i < blk ? nq - i : blk;
        frc = faiss_Index_search((FaissIndex *)flat, (idx_t)b, D->queries.data + i * D->d, (idx_t)k,
                                 dist + i * k, ids + i * k);
        if (frc) rc = bench_faiss_fail("ground-truth search", frc);
        else bench_log(r, "ground truth: %zu/%zu queries", i + b, nq);
    }
    faiss_Index_free((FaissIndex *)flat);
    if (rc == 0) {
        for (size_t i = 0; i < nq * k; i++) gt[i] = (int32_t)ids[i];
        if (!cache)
            ;
        else if (qx_ivecs_write(path, gt, nq, k))
            bench_note(r, "could not cache the ground truth in %s: %s", path, qx_last_error());
        else bench_log(r, "ground truth: cached in %s", path);
        D->gt = gt;
        D->gt_malloced = 1;
        D->gt_k = k;
        gt = NULL;
    }
    free(dist);
    free(ids);
    free(gt);
    return rc;
}

int bench_eval_codec(bench_run *r, const char *method, size_t bytes, bench_codec *c) {
    bench_data *D = r->data;
    const size_t n = D->base.n, d = D->d, nq = D->queries.n;
    bench_result res;
    bench_result_init(&res, method, bytes);
    snprintf(res.spec, sizeof res.spec, "%s", c->spec);
    res.threads = r->train_threads;
    bench_set_threads(r->cfg->threads);

    bench_log(r, "%s %zuB (%s): training on %zu vectors ...", method, bytes, c->spec, r->train_n);
    res.n_train = r->train_n;
    double t = bench_now();
    int rc = c->train(c, r->train_x, r->train_n);
    if (rc) return rc;
    res.train_s = bench_now() - t + c->extra_train_s;
    size_t cs = c->code_size;
    res.bytes = cs;
    if (cs != bytes)
        bench_note(r, "%s at %zu bytes stores %zu bytes per vector (%s)", method, bytes, cs, c->spec);

    uint8_t *codes = malloc(cs * (n ? n : 1));
    float *buf = NULL;
    const size_t chunk = 16384;
    if (!codes) return QX_ENOMEM;
    bench_log(r, "%s %zuB: trained in %.1fs; encoding %zu vectors ...", method, bytes, res.train_s, n);
    t = bench_now();
    double last = t;
    for (size_t i = 0; i < n; i += chunk) {
        size_t b = n - i < chunk ? n - i : chunk;
        if ((rc = c->encode(c, D->base.data + i * d, b, codes + i * cs))) goto out;
        if (bench_now() - last > 30) {
            last = bench_now();
            bench_log(r, "%s %zuB: encoded %zu/%zu", method, bytes, i + b, n);
        }
    }
    res.encode_s = bench_now() - t;
    res.index_bytes = (double)n * cs;

    /* decode in chunks into the flat index; MSE from the same decodings */
    FaissIndexFlatL2 *flat = NULL;
    int frc = faiss_IndexFlatL2_new_with(&flat, (idx_t)d);
    if (frc) {
        rc = bench_faiss_fail("IndexFlatL2", frc);
        goto out;
    }
    buf = malloc(sizeof(float) * chunk * d);
    if (!buf) {
        rc = QX_ENOMEM;
        goto out_flat;
    }
    double sse = 0;
    for (size_t i = 0; i < n; i += chunk) {
        size_t b = n - i < chunk ? n - i : chunk;
        if ((rc = c->decode(c, codes + i * cs, b, buf))) goto out_flat;
        const float *x = D->base.data + i * d;
        for (size_t j = 0; j < b * d; j++) {
            double e = (double)x[j] - buf[j];
            sse += e * e;
        }
        if ((frc = faiss_Index_add((FaissIndex *)flat, (idx_t)b, buf))) {
            rc = bench_faiss_fail("IndexFlatL2 add", frc);
            goto out_flat;
        }
    }
    res.mse = n ? sse / n : NAN;
    size_t k = n < 100 ? n : 100;
    float *dist = malloc(sizeof(float) * nq * k);
    int64_t *ids = malloc(sizeof(int64_t) * nq * k);
    if (!dist || !ids) rc = QX_ENOMEM;
    else if ((frc = faiss_Index_search((FaissIndex *)flat, (idx_t)nq, D->queries.data, (idx_t)k, dist,
                                       ids)))
        rc = bench_faiss_fail("search over reconstructions", frc);
    if (rc == 0) {
        bench_recall rec;
        bench_recall_compute(ids, k, D->gt, D->gt_k, nq, &rec);
        res.r1 = rec.r1;
        res.r10 = rec.r10;
        res.r100 = rec.r100;
        res.r10at10 = rec.r10at10;
        bench_log(r, "%s %zuB: MSE %.5g  R@1 %.4f  R@10 %.4f  R@100 %.4f  train %.1fs  encode %.1fs",
                  method, bytes, res.mse, res.r1, res.r10, res.r100, res.train_s, res.encode_s);
        rc = bench_add_result(r, &res);
    }
    free(dist);
    free(ids);
out_flat:
    faiss_Index_free((FaissIndex *)flat);
out:
    free(buf);
    free(codes);
    return rc;
}
