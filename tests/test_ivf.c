/* tests/test_ivf.c — the IVF index: recall against brute force (synthetic
 * and siftsmall), exactness of the scan against decoded reconstructions,
 * upsert/remove invariants, save→load identity, corrupt and truncated files,
 * bad arguments, and out-of-memory injection through the allocator seam. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qinx/qinx.h"

/* libqinx's CRC-32 (core/crc32.c; internal.h is not for tests): to forge a
 * header whose checksum is valid */
uint32_t qx__crc32(uint32_t crc, const void *data, size_t len);

#define D 32
#define NB 12000
#define NQ 100

static float *base, *queries;
static int64_t *gt;
static qx_ivf *shared_ivf;

/* These tests check the index, not codebook quality: cheaper RQ training
 * (greedy training beam, fewer k-means iterations) keeps the suite quick. */
static void fast_training(qx_rq_opts *ro) {
    ro->train_beam = 1;
    ro->kmeans_iters = 10;
    ro->refine_iters = 1;
    ro->refine_min_per_codeword = 0; /* the sets here are below the default minimum */
}

static qx_ivf *build(const float *x, size_t n, size_t bytes, size_t nlist, qx_metric metric) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = metric == QX_METRIC_L2 ? bytes - 1 : bytes;
    fast_training(&ro);
    qx_quantizer *q = NULL;
    assert_int_equal(qx_rq_new(&q, D, &ro), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = nlist;
    io.metric = metric;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, D, q, &io), 0);
    int rc = qx_ivf_train(ivf, x, n);
    if (rc) fprintf(stderr, "train: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
    int64_t *ids = malloc(sizeof(int64_t) * n);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i;
    assert_int_equal(qx_ivf_add(ivf, x, ids, n), 0);
    free(ids);
    assert_int_equal(qx_ivf_check(ivf), 0);
    return ivf;
}

static int setup(void **state) {
    base = tu_clustered(NB + NQ, D, 50, 42);
    queries = base + (size_t)NB * D;
    gt = tu_brute_knn(base, NB, queries, NQ, D, 10);
    shared_ivf = build(base, NB, 16, 64, QX_METRIC_L2);
    return 0;
}

static int teardown(void **state) {
    qx_ivf_free(shared_ivf);
    free(base);
    free(gt);
    return 0;
}

static double recall10(const int64_t *ids, size_t k) { return tu_k_recall(ids, k, gt, NULL, 10, NQ, 10); }

static void search(const qx_ivf *ivf, size_t k, size_t nprobe, size_t rerank, float *dist, int64_t *ids) {
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    p.rerank = rerank;
    int rc = qx_ivf_search(ivf, NULL, queries, NQ, k, &p, dist, ids);
    if (rc) fprintf(stderr, "search: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
}

static void test_recall_synthetic(void **state) {
    float dist[NQ * 10];
    int64_t ids[NQ * 10];
    search(shared_ivf, 10, 64, 0, dist, ids);
    double r_full = recall10(ids, 10);
    search(shared_ivf, 10, 8, 0, dist, ids);
    double r_8 = recall10(ids, 10);
    search(shared_ivf, 10, 64, 100, dist, ids);
    double r_rr = recall10(ids, 10);
    /* a re-rank shorter than k re-ranks the k candidates (it wrote past its
     * buffers: a crash, through `qinx search --gt` and HTTP params alike) */
    float dist_s[NQ * 10];
    int64_t ids_s[NQ * 10];
    search(shared_ivf, 10, 64, 3, dist_s, ids_s);
    double r_short = recall10(ids_s, 10);
    assert_true(r_short >= r_full - 0.02);
    fprintf(stderr, "synthetic 10-recall@10: nprobe 64 %.3f, nprobe 8 %.3f, rerank 100 %.3f\n", r_full, r_8, r_rr);
    assert_true(r_full >= 0.6);
    assert_true(r_rr >= r_full - 0.02);
    assert_true(r_full >= r_8 - 1e-9);
    for (size_t i = 0; i < NQ; i++)
        for (size_t j = 1; j < 10; j++) assert_true(dist[i * 10 + j - 1] <= dist[i * 10 + j]);
}

/* Filtered search: only passing ids come back; the scan keeps probing lists
 * until k pass, so a reply is short only when fewer than k ids pass; recall
 * against the exact filtered answer stays within 5 % of the unfiltered
 * recall at the same nprobe, from 50 % down to 0.1 % of the ids passing. */
static int pass_mod(void *ctx, int64_t id) { return id % *(const int64_t *)ctx == 0; }

static void test_filtered_search(void **state) {
    (void)state;
    static const int64_t mods[] = {2, 10, 100, 1000};
    float dist[NQ * 10];
    int64_t ids[NQ * 10];
    search(shared_ivf, 10, 8, 0, dist, ids);
    double r_plain = recall10(ids, 10);
    float *sub = malloc(sizeof(float) * NB * D);
    int64_t *map = malloc(sizeof(int64_t) * NB);
    for (size_t mi = 0; mi < 4; mi++) {
        int64_t mod = mods[mi];
        size_t m = 0;
        for (size_t i = 0; i < NB; i++)
            if ((int64_t)i % mod == 0) memcpy(sub + m * D, base + i * D, sizeof(float) * D), map[m++] = (int64_t)i;
        int64_t *fgt = tu_brute_knn(sub, m, queries, NQ, D, 10);
        qx_search_params p;
        qx_search_params_init(&p);
        p.nprobe = 8;
        p.filter = pass_mod;
        p.filter_ctx = &mod;
        assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, NQ, 10, &p, dist, ids), 0);
        size_t inter = 0, want = m < 10 ? m : 10;
        for (size_t q = 0; q < NQ; q++) {
            size_t got = 0;
            for (size_t j = 0; j < 10; j++) {
                if (ids[q * 10 + j] < 0) continue;
                got++;
                assert_true(ids[q * 10 + j] % mod == 0);
                for (size_t t = 0; t < want; t++) inter += ids[q * 10 + j] == map[fgt[q * 10 + t]];
            }
            assert_int_equal(got, want); /* never short while enough pass */
        }
        double r = inter / (double)(want * NQ);
        fprintf(stderr, "filtered (1/%lld pass) 10-recall@10 at nprobe 8: %.3f (unfiltered %.3f)\n", (long long)mod, r,
                r_plain);
        assert_true(r >= 0.95 * r_plain);
        free(fgt);
    }
    /* the bound: at most max_nprobe lists, reported */
    int64_t mod = 1000000;
    size_t visited = 0;
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 4;
    p.max_nprobe = 6;
    p.filter = pass_mod;
    p.filter_ctx = &mod;
    p.lists_visited = &visited;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, dist, ids), 0);
    assert_int_equal(visited, 6);
    /* the early stop for a correlated filter: nothing passes near the query,
     * so the scan stops after its nprobe lists and reports what it tested */
    size_t tested = 0, passed = 99;
    p.max_nprobe = 0;
    p.filter_tested = &tested;
    p.filter_passed = &passed;
    p.filter_stop_below = 0.05;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, dist, ids), 0);
    assert_int_equal(visited, 4);
    assert_true(tested >= QX_FILTER_STOP_MIN_TESTED);
    assert_int_equal(passed, 0);
    /* and not when enough pass there (1 in 2 ids: above 5 %) */
    mod = 2;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, dist, ids), 0);
    assert_true(passed > 0 && passed >= tested / 4);
    assert_true(ids[9] >= 0);
    free(sub);
    free(map);
}

/* Search among given ids (only_ids): the same scores as a scan, so the
 * answer equals a filtered search that probes every list with the same set
 * as its filter (ids the index does not hold are skipped); and on a filter
 * correlated with the vectors (a half-space: the points far from most
 * queries pass), recall does not depend on probing. */
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}
static int pass_set(void *ctx, int64_t id) { return id >= 0 && id < NB && ((const uint8_t *)ctx)[id]; }

static void test_search_among_ids(void **state) {
    (void)state;
    uint8_t *in = calloc(NB, 1);
    int64_t *set = malloc(sizeof(int64_t) * (NB + 2));
    float *sub = malloc(sizeof(float) * NB * D);
    int64_t *map = malloc(sizeof(int64_t) * NB);
    /* the passing half-space: first coordinate above its 80th percentile */
    float *c0 = malloc(sizeof(float) * NB);
    for (size_t i = 0; i < NB; i++) c0[i] = base[i * D];
    qsort(c0, NB, sizeof *c0, cmp_float);
    float thr = c0[NB * 8 / 10];
    size_t m = 0, ns = 0;
    set[ns++] = NB + 5; /* not held: skipped */
    for (size_t i = 0; i < NB; i++)
        if (base[i * D] > thr) {
            in[i] = 1, set[ns++] = (int64_t)i;
            memcpy(sub + m * D, base + i * D, sizeof(float) * D), map[m++] = (int64_t)i;
        }
    set[ns++] = -7;
    int64_t *fgt = tu_brute_knn(sub, m, queries, NQ, D, 10);
    for (size_t rr = 0; rr <= 50; rr += 50) {
        float d1[NQ * 10], d2[NQ * 10];
        int64_t i1[NQ * 10], i2[NQ * 10];
        qx_search_params p;
        qx_search_params_init(&p);
        p.nprobe = 64; /* every list */
        p.rerank = rr;
        p.filter = pass_set;
        p.filter_ctx = in;
        assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, NQ, 10, &p, d1, i1), 0);
        qx_search_params_init(&p);
        p.nprobe = 1; /* ignored */
        p.rerank = rr;
        p.only_ids = set;
        p.n_only_ids = ns;
        assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, NQ, 10, &p, d2, i2), 0);
        for (size_t j = 0; j < NQ * 10; j++) {
            assert_int_equal(i1[j], i2[j]);
            assert_float_equal(d1[j], d2[j], 1e-3f * (1 + fabsf(d1[j])));
        }
        /* the probing scan at nprobe 8 against the same set, for the record */
        qx_search_params_init(&p);
        p.nprobe = 8;
        p.rerank = rr;
        p.filter = pass_set;
        p.filter_ctx = in;
        assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, NQ, 10, &p, d1, i1), 0);
        size_t h1 = 0, h2 = 0;
        for (size_t q = 0; q < NQ; q++)
            for (size_t j = 0; j < 10; j++)
                for (size_t t = 0; t < 10; t++) {
                    h1 += i1[q * 10 + j] == map[fgt[q * 10 + t]];
                    h2 += i2[q * 10 + j] == map[fgt[q * 10 + t]];
                }
        fprintf(stderr, "half-space filter (%zu of %d pass), rerank %zu: 10-recall@10 among ids %.3f, probing nprobe 8 %.3f\n",
                m, NB, rr, h2 / (10.0 * NQ), h1 / (10.0 * NQ));
        assert_true(h2 >= h1);
    }
    /* an empty set: nothing found, padded */
    float d[10];
    int64_t ids[10];
    qx_search_params p;
    qx_search_params_init(&p);
    p.only_ids = set;
    p.n_only_ids = 0;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, d, ids), 0);
    assert_int_equal(ids[0], -1);
    p.only_ids = NULL;
    p.n_only_ids = 3;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, d, ids), QX_EINVAL);
    free(fgt);
    free(c0);
    free(in);
    free(set);
    free(sub);
    free(map);
}

/* With every list probed and a shortlist covering the base, reranked
 * distances must be the exact distances to the decoded reconstructions. */
static void test_scan_matches_decoded(void **state) {
    const qx_quantizer *q = qx_ivf_quantizer(shared_ivf);
    size_t M = qx_quantizer_steps(q);
    /* Brute force over reconstructions: decode each base vector's code via a
     * fresh encode of its residual to its nearest centroid. */
    const float *cent = qx_ivf_centroids(shared_ivf);
    qx_ivf_info info;
    qx_ivf_get_info(shared_ivf, &info);
    uint32_t *assign = malloc(sizeof(uint32_t) * NB);
    assert_int_equal(qx_assign_nearest(base, NB, cent, info.nlist, D, assign, NULL), 0);
    float *res = malloc(sizeof(float) * NB * D);
    for (size_t i = 0; i < NB; i++)
        for (size_t j = 0; j < D; j++) res[i * D + j] = base[i * D + j] - cent[assign[i] * D + j];
    uint8_t *codes = malloc(NB * M);
    assert_int_equal(qx_quantizer_encode(q, res, NB, codes), 0);
    assert_int_equal(qx_quantizer_decode(q, codes, NB, 0, res), 0);
    for (size_t i = 0; i < NB; i++)
        for (size_t j = 0; j < D; j++) res[i * D + j] += cent[assign[i] * D + j];
    int64_t *want = tu_brute_knn(res, NB, queries, NQ, D, 1);
    float dist[NQ * 5];
    int64_t ids[NQ * 5];
    search(shared_ivf, 5, info.nlist, NB, dist, ids);
    size_t same = 0;
    for (size_t i = 0; i < NQ; i++) {
        same += ids[i * 5] == want[i];
        float exact = qx_l2sqr(queries + i * D, res + (size_t)ids[i * 5] * D, D);
        assert_true(fabsf(exact - dist[i * 5]) <= 1e-3f * (1.0f + exact));
    }
    assert_true(same >= NQ - 1); /* float ties may swap one */
    free(assign);
    free(res);
    free(codes);
    free(want);
}

static void test_save_load_identical(void **state) {
    const char *path = tu_tmpfile("a.qinx");
    assert_int_equal(qx_ivf_save(shared_ivf, path), 0);
    qx_ivf *back = NULL;
    assert_int_equal(qx_ivf_load(path, &back), 0);
    assert_int_equal(qx_ivf_check(back), 0);
    float d1[NQ * 10], d2[NQ * 10];
    int64_t i1[NQ * 10], i2[NQ * 10];
    search(shared_ivf, 10, 16, 50, d1, i1);
    search(back, 10, 16, 50, d2, i2);
    assert_memory_equal(i1, i2, sizeof i1);
    assert_memory_equal(d1, d2, sizeof d1);
    /* Saving the loaded index gives the same bytes. */
    const char *path2 = tu_tmpfile("b.qinx");
    assert_int_equal(qx_ivf_save(back, path2), 0);
    FILE *f1 = fopen(path, "rb"), *f2 = fopen(path2, "rb");
    int c1, c2;
    do {
        c1 = fgetc(f1);
        c2 = fgetc(f2);
        assert_int_equal(c1, c2);
    } while (c1 != EOF);
    fclose(f1);
    fclose(f2);
    qx_ivf_free(back);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void spit(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_corrupt_files_rejected(void **state) {
    const char *good = tu_tmpfile("good.qinx");
    assert_int_equal(qx_ivf_save(shared_ivf, good), 0);
    size_t n;
    unsigned char *p = slurp(good, &n);
    char bad[600];
    snprintf(bad, sizeof bad, "%s", tu_tmpfile("bad.qinx"));
    qx_ivf *ivf = NULL;
    /* Truncations at many points, including inside every section. */
    size_t cuts[] = {0, 7, 63, 64, 80, 200, n / 3, n / 2, n - 9, n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        spit(bad, p, cuts[c]);
        assert_int_equal(qx_ivf_load(bad, &ivf), QX_EFORMAT);
        assert_null(ivf);
        assert_non_null(strstr(qx_last_error(), "bad.qinx"));
    }
    /* Single bit flips spread over the file. */
    for (size_t i = 0; i < 40; i++) {
        size_t at = (i * 7919u * 13u) % n;
        p[at] ^= 0x10;
        spit(bad, p, n);
        assert_int_equal(qx_ivf_load(bad, &ivf), QX_EFORMAT);
        p[at] ^= 0x10;
    }
    /* Trailing garbage. */
    unsigned char *q = malloc(n + 5);
    memcpy(q, p, n);
    memcpy(q + n, "junk!", 5);
    spit(bad, q, n + 5);
    assert_int_equal(qx_ivf_load(bad, &ivf), QX_EFORMAT);
    free(q);
    /* A header that lies with a valid checksum: the quantizer kind says QINCo,
     * the quantizer section holds an RQ (the loader once read the freed
     * quantizer to word this message: ASan catches a regression). */
    {
        unsigned char hdr[64];
        memcpy(hdr, p, 64);
        uint32_t kind = QX_QUANT_QINCO, crc;
        memcpy(p + 20, &kind, 4);
        crc = qx__crc32(0, p, 60);
        memcpy(p + 60, &crc, 4);
        spit(bad, p, n);
        assert_int_equal(qx_ivf_load(bad, &ivf), QX_EFORMAT);
        assert_null(ivf);
        assert_non_null(strstr(qx_last_error(), "does not match the header"));
        memcpy(p, hdr, 64);
    }
    /* Not an index at all, and a missing file. */
    spit(bad, (const unsigned char *)"hello world, not an index at all, padding padding padding padding", 66);
    assert_int_equal(qx_ivf_load(bad, &ivf), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "magic"));
    assert_int_equal(qx_ivf_load(tu_tmpfile("missing.qinx"), &ivf), QX_ENOTFOUND);
    /* The original still loads. */
    spit(bad, p, n);
    assert_int_equal(qx_ivf_load(bad, &ivf), 0);
    qx_ivf_free(ivf);
    free(p);
}

static void test_upsert_and_remove(void **state) {
    qx_ivf *ivf = build(base, 3000, 8, 16, QX_METRIC_L2);
    int64_t del[] = {0, 5, 17, 2999, 123456789};
    size_t removed = 0;
    assert_int_equal(qx_ivf_remove(ivf, del, 5, &removed), 0);
    assert_int_equal(removed, 4);
    assert_int_equal(qx_ivf_check(ivf), 0);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    assert_int_equal(info.ntotal, 2996);
    /* Query with the deleted vectors themselves: they never come back. */
    float dist[10];
    int64_t ids[10];
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 16;
    for (int t = 0; t < 4; t++) {
        assert_int_equal(qx_ivf_search(ivf, NULL, base + del[t] * D, 1, 10, &p, dist, ids), 0);
        for (int j = 0; j < 10; j++) assert_true(ids[j] != del[t]);
    }
    /* Upsert: id 7 gets vector 2500's values; searching vector 2500 finds 7. */
    int64_t id7 = 7;
    assert_int_equal(qx_ivf_add(ivf, base + 2500 * D, &id7, 1), 0);
    assert_int_equal(qx_ivf_check(ivf), 0);
    qx_ivf_get_info(ivf, &info);
    assert_int_equal(info.ntotal, 2996);
    p.rerank = 50;
    assert_int_equal(qx_ivf_search(ivf, NULL, base + 2500 * D, 1, 10, &p, dist, ids), 0);
    int found = 0;
    for (int j = 0; j < 2; j++) found |= ids[j] == 7;
    assert_true(found);
    /* Remove everything: searches return padding. */
    int64_t *all = malloc(sizeof(int64_t) * 3000);
    for (int i = 0; i < 3000; i++) all[i] = i;
    assert_int_equal(qx_ivf_remove(ivf, all, 3000, &removed), 0);
    assert_int_equal(removed, 2996);
    assert_int_equal(qx_ivf_check(ivf), 0);
    assert_int_equal(qx_ivf_search(ivf, NULL, base, 1, 10, &p, dist, ids), 0);
    for (int j = 0; j < 10; j++) {
        assert_int_equal(ids[j], -1);
        assert_true(isinf(dist[j]));
    }
    free(all);
    qx_ivf_free(ivf);
}


/* A caller's id map (qx_ivf_locator, here a qx_idmap kept outside) and
 * entries as stored: the model file plus qx_ivf_get_entries ->
 * qx_ivf_add_entries gives an index that searches exactly like the original;
 * removes and upserts under the locator keep it exact; trim keeps results. */
static int ext_get(void *ctx, int64_t id, uint64_t *loc) { return qx_idmap_get(ctx, id, loc); }
static int ext_put(void *ctx, int64_t id, uint64_t loc) { return qx_idmap_put(ctx, id, loc); }
static void ext_del(void *ctx, int64_t id) { qx_idmap_del(ctx, id); }

static void test_locator_and_entries(void **state) {
    (void)state;
    qx_ivf *ivf = build(base, 3000, 8, 16, QX_METRIC_L2);
    qx_idmap ext = {0};
    qx_ivf_locator loc = {ext_get, ext_put, ext_del, &ext};
    assert_int_equal(qx_ivf_set_locator(ivf, &loc), 0);
    assert_int_equal(ext.count, 3000);
    int64_t del[] = {0, 5, 17, 2999};
    size_t removed = 0;
    assert_int_equal(qx_ivf_remove(ivf, del, 4, &removed), 0);
    assert_int_equal(removed, 4);
    int64_t id7 = 7;
    assert_int_equal(qx_ivf_add(ivf, base + 2500 * D, &id7, 1), 0);
    assert_int_equal(qx_ivf_check(ivf), 0);
    assert_int_equal(ext.count, 2996);
    /* the model alone, then the entries back */
    const char *path = tu_tmpfile("model.qinx");
    assert_int_equal(qx_ivf_save_model(ivf, path), 0);
    qx_ivf *back = NULL;
    assert_int_equal(qx_ivf_load(path, &back), 0);
    qx_ivf_info info;
    assert_int_equal(qx_ivf_get_info(back, &info), 0);
    assert_int_equal(info.ntotal, 0);
    int64_t *ids = malloc(3001 * sizeof *ids);
    uint32_t *lists = malloc(3001 * sizeof *lists);
    uint8_t *codes = malloc(3001 * info.code_size);
    for (int i = 0; i < 3001; i++) ids[i] = i; /* 3000 was never added */
    assert_int_equal(qx_ivf_get_entries(ivf, ids, 3001, lists, codes), 0);
    for (int t = 0; t < 4; t++) assert_int_equal(lists[del[t]], UINT32_MAX);
    assert_int_equal(lists[3000], UINT32_MAX);
    assert_int_equal(qx_ivf_add_entries(back, lists, codes, ids, 3001), 0);
    assert_int_equal(qx_ivf_check(back), 0);
    assert_int_equal(qx_ivf_trim(back), 0);
    assert_int_equal(qx_ivf_check(back), 0);
    float d1[NQ * 10], d2[NQ * 10];
    int64_t i1[NQ * 10], i2[NQ * 10];
    search(ivf, 10, 16, 0, d1, i1);
    search(back, 10, 16, 0, d2, i2);
    /* list order may differ (trim, re-adding): compare as sets with distances */
    for (size_t q = 0; q < NQ; q++)
        for (size_t j = 0; j < 10; j++) assert_true(fabsf(d1[q * 10 + j] - d2[q * 10 + j]) <= 1e-5f * (1 + fabsf(d1[q * 10 + j])));
    /* a bad list number adds nothing */
    size_t before = 0;
    qx_ivf_get_info(back, &info);
    before = info.ntotal;
    int64_t nid = 5000;
    uint32_t bad = (uint32_t)info.nlist;
    assert_int_equal(qx_ivf_add_entries(back, &bad, codes, &nid, 1), QX_EINVAL);
    qx_ivf_get_info(back, &info);
    assert_int_equal(info.ntotal, before);
    free(ids);
    free(lists);
    free(codes);
    qx_ivf_free(back);
    qx_ivf_free(ivf);
    qx_idmap_free(&ext);
}

/* qx_ivf_add_records: the records as a codes file stores them ({u32 list,
 * code}), on 3 threads through a dense-array locator (puts of distinct ids
 * from several threads), give the same lists, in the same order, as adding
 * the entries one by one; skipped records are absent; a bad list number adds
 * nothing; an id already held is refused. */
typedef struct dense_loc {
    uint64_t loc[4096];
    unsigned char has[4096];
} dense_loc;
static int dl_get(void *ctx, int64_t id, uint64_t *loc) {
    dense_loc *m = ctx;
    if (id < 0 || id >= 4096 || !m->has[id]) return 0;
    *loc = m->loc[id];
    return 1;
}
static int dl_put(void *ctx, int64_t id, uint64_t loc) {
    dense_loc *m = ctx;
    if (id < 0 || id >= 4096) return QX_ENOMEM;
    m->loc[id] = loc;
    m->has[id] = 1;
    return 0;
}
static void dl_del(void *ctx, int64_t id) {
    dense_loc *m = ctx;
    if (id >= 0 && id < 4096) m->has[id] = 0;
}

/* qx_ivf_encode gives the lists and codes qx_ivf_add stored, without adding;
 * NaN input is refused. */
static void test_encode_matches_add(void **state) {
    (void)state;
    qx_ivf *ivf = build(base, 3000, 8, 16, QX_METRIC_L2);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    size_t cs = info.code_size;
    int64_t *ids = malloc(3000 * sizeof *ids);
    uint32_t *l1 = malloc(3000 * sizeof *l1), *l2 = malloc(3000 * sizeof *l2);
    uint8_t *c1 = malloc(3000 * cs), *c2 = malloc(3000 * cs);
    for (int i = 0; i < 3000; i++) ids[i] = i;
    assert_int_equal(qx_ivf_get_entries(ivf, ids, 3000, l1, c1), 0);
    assert_int_equal(qx_ivf_encode(ivf, base, 3000, l2, c2), 0);
    assert_memory_equal(l1, l2, 3000 * sizeof *l1);
    assert_memory_equal(c1, c2, 3000 * cs);
    qx_ivf_get_info(ivf, &info);
    assert_int_equal(info.ntotal, 3000); /* nothing added */
    float bad[D];
    memcpy(bad, base, sizeof bad);
    bad[3] = NAN;
    assert_int_equal(qx_ivf_encode(ivf, bad, 1, l2, c2), QX_EINVAL);
    assert_int_equal(qx_ivf_encode(ivf, base, 1, NULL, c2), QX_EINVAL);
    free(ids), free(l1), free(l2), free(c1), free(c2);
    qx_ivf_free(ivf);
}

static void test_add_records_parallel(void **state) {
    (void)state;
    qx_ivf *ivf = build(base, 3000, 8, 16, QX_METRIC_L2);
    const char *path = tu_tmpfile("model-rec.qinx");
    assert_int_equal(qx_ivf_save_model(ivf, path), 0);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    size_t cs = info.code_size, stride = 4 + cs + 3; /* a stride wider than a record */
    int64_t *ids = malloc(3000 * sizeof *ids);
    uint32_t *lists = malloc(3000 * sizeof *lists);
    uint8_t *codes = malloc(3000 * cs), *rec = calloc(3000, stride);
    for (int i = 0; i < 3000; i++) ids[i] = i;
    assert_int_equal(qx_ivf_get_entries(ivf, ids, 3000, lists, codes), 0);
    uint64_t skip[(3000 + 63) / 64] = {0};
    for (int i = 0; i < 3000; i += 97) skip[i >> 6] |= (uint64_t)1 << (i & 63);
    lists[5] = UINT32_MAX; /* a record not in the index */
    for (int i = 0; i < 3000; i++) {
        memcpy(rec + i * stride, &lists[i], 4);
        memcpy(rec + i * stride + 4, codes + i * cs, cs);
        if ((skip[i >> 6] >> (i & 63)) & 1) lists[i] = UINT32_MAX;
    }
    /* one by one (the reference), and in bulk on 3 threads */
    qx_ivf *one = NULL, *bulk = NULL;
    assert_int_equal(qx_ivf_load(path, &one), 0);
    assert_int_equal(qx_ivf_add_entries(one, lists, codes, ids, 3000), 0);
    dense_loc *dl = calloc(1, sizeof *dl);
    qx_ivf_locator loc = {dl_get, dl_put, dl_del, dl};
    assert_int_equal(qx_ivf_load(path, &bulk), 0);
    assert_int_equal(qx_ivf_set_locator(bulk, &loc), 0);
    /* a bad list number: refused, nothing added */
    uint32_t badl = (uint32_t)info.nlist;
    memcpy(rec + 2999 * stride, &badl, 4);
    assert_int_equal(qx_ivf_add_records(bulk, rec, stride, 3000, 0, skip, 3), QX_EINVAL);
    qx_ivf_get_info(bulk, &info);
    assert_int_equal(info.ntotal, 0);
    memcpy(rec + 2999 * stride, &lists[2999], 4);
    assert_int_equal(qx_ivf_add_records(bulk, rec, stride, 3000, 0, skip, 3), 0);
    assert_int_equal(qx_ivf_check(bulk), 0);
    qx_ivf_info a, b;
    qx_ivf_get_info(one, &a);
    qx_ivf_get_info(bulk, &b);
    assert_int_equal(a.ntotal, b.ntotal);
    assert_true(b.ntotal < 3000 - 30);
    uint32_t l1, l2;
    uint8_t c1[64], c2[64];
    for (int64_t i = 0; i < 3000; i++) {
        assert_int_equal(qx_ivf_get_entries(one, &i, 1, &l1, c1), 0);
        assert_int_equal(qx_ivf_get_entries(bulk, &i, 1, &l2, c2), 0);
        assert_int_equal(l1, l2);
        assert_memory_equal(c1, c2, cs);
        uint64_t p;
        assert_int_equal(dl_get(dl, i, &p), l1 != UINT32_MAX); /* every entry's put, and only those */
    }
    float d1[NQ * 10], d2[NQ * 10];
    int64_t i1[NQ * 10], i2[NQ * 10];
    search(one, 10, 16, 0, d1, i1);
    search(bulk, 10, 16, 0, d2, i2);
    assert_memory_equal(i1, i2, sizeof i1); /* same lists in the same order: the same answers */
    assert_memory_equal(d1, d2, sizeof d1);
    /* ids already held are refused */
    assert_int_equal(qx_ivf_add_records(bulk, rec, stride, 10, 0, NULL, 2), QX_EINVAL);
    qx_ivf_free(one);
    qx_ivf_free(bulk);
    free(dl);
    free(ids);
    free(lists);
    free(codes);
    free(rec);
    qx_ivf_free(ivf);
}

/* Blocks of one or two queries take the sgemv path (ivf_search.c, decision
 * 5), larger ones sgemm: the same results, up to float rounding. */
static void check_small_blocks(const qx_ivf *ivf, size_t nprobe) {
    float dist[NQ * 10], d1[NQ * 10];
    int64_t ids[NQ * 10], i1[NQ * 10];
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    p.threads = 1;
    assert_int_equal(qx_ivf_search(ivf, NULL, queries, NQ, 10, &p, dist, ids), 0);
    for (size_t i = 0; i < NQ; i += 2) /* pairs (NQ is even), then the last query again alone */
        assert_int_equal(qx_ivf_search(ivf, NULL, queries + i * D, 2, 10, &p, d1 + i * 10, i1 + i * 10), 0);
    assert_int_equal(qx_ivf_search(ivf, NULL, queries + (NQ - 1) * D, 1, 10, &p, d1 + (NQ - 1) * 10,
                                   i1 + (NQ - 1) * 10), 0);
    size_t same = 0;
    for (size_t i = 0; i < NQ * 10; i++) {
        same += ids[i] == i1[i];
        assert_true(fabsf(dist[i] - d1[i]) <= 1e-4f * (1.0f + fabsf(dist[i])));
    }
    assert_true(same >= NQ * 10 - 4); /* float near-ties may swap a few */
}

static void test_small_blocks_match_batch(void **state) {
    check_small_blocks(shared_ivf, 16);
    qx_ivf *ip = build(base, 4000, 8, 16, QX_METRIC_IP);
    check_small_blocks(ip, 8);
    qx_ivf_free(ip);
}

static void test_inner_product(void **state) {
    qx_ivf *ivf = build(base, 4000, 8, 16, QX_METRIC_IP);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    assert_int_equal(info.code_size, 8); /* no norm byte for IP */
    float dist[NQ * 10];
    int64_t ids[NQ * 10];
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 16;
    p.rerank = 200;
    assert_int_equal(qx_ivf_search(ivf, NULL, queries, NQ, 10, &p, dist, ids), 0);
    /* Best inner product by brute force over the same 4000 vectors. */
    size_t hits = 0;
    for (size_t i = 0; i < NQ; i++) {
        float best = -INFINITY;
        int64_t arg = -1;
        for (size_t b = 0; b < 4000; b++) {
            float s = qx_dot(queries + i * D, base + b * D, D);
            if (s > best) best = s, arg = (int64_t)b;
        }
        for (int j = 0; j < 10; j++) hits += ids[i * 10 + j] == arg;
        for (int j = 1; j < 10; j++) assert_true(dist[i * 10 + j - 1] >= dist[i * 10 + j]);
    }
    fprintf(stderr, "IP recall@10 of the true max: %.2f\n", hits / (double)NQ);
    assert_true(hits >= NQ * 8 / 10);
    qx_ivf_free(ivf);
}

static void test_bad_arguments(void **state) {
    float dist[10];
    int64_t ids[10];
    qx_search_params p;
    qx_search_params_init(&p);
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 0, &p, dist, ids), QX_EINVAL);
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, QX_MAX_K + 1, &p, dist, ids), QX_EINVAL);
    p.nprobe = 0;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, queries, 1, 10, &p, dist, ids), QX_EINVAL);
    p.nprobe = 4;
    float nanq[D];
    memcpy(nanq, queries, sizeof nanq);
    nanq[3] = NAN;
    assert_int_equal(qx_ivf_search(shared_ivf, NULL, nanq, 1, 10, &p, dist, ids), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "NaN"));
    int64_t id = 1;
    nanq[3] = INFINITY;
    assert_int_equal(qx_ivf_add(shared_ivf, nanq, &id, 1), QX_EINVAL);
    /* Dimension mismatch between index and quantizer. */
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    qx_quantizer *q = NULL;
    assert_int_equal(qx_rq_new(&q, 16, &ro), 0);
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, D, q, NULL), QX_EDIM);
    assert_null(ivf);
    /* Untrained index. */
    assert_int_equal(qx_rq_new(&q, D, &ro), 0);
    assert_int_equal(qx_ivf_new(&ivf, D, q, NULL), 0);
    assert_int_equal(qx_ivf_add(ivf, queries, &id, 1), QX_ESTATE);
    assert_int_equal(qx_ivf_search(ivf, NULL, queries, 1, 10, &p, dist, ids), QX_ESTATE);
    assert_int_equal(qx_ivf_train(ivf, queries, 10), QX_EINVAL); /* too few */
    qx_ivf_free(ivf);
}

/* ---- out-of-memory injection ------------------------------------------------- */
static long alloc_budget = -1;
static void *oom_malloc(size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return malloc(n);
}
static void *oom_realloc(void *p, size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return realloc(p, n);
}

static void test_oom_in_add_and_search(void **state) {
    qx_ivf *ivf = build(base, 2000, 8, 8, QX_METRIC_L2);
    qx_allocator a = {oom_malloc, oom_realloc, free};
    qx_set_allocator(&a);
    int64_t ids[200];
    for (int i = 0; i < 200; i++) ids[i] = 100000 + i;
    int failures = 0, successes = 0;
    for (long budget = 0; budget < 60; budget += 3) {
        alloc_budget = budget;
        int rc = qx_ivf_add(ivf, base + 2000 * D, ids, 200);
        alloc_budget = -1;
        if (rc) {
            assert_int_equal(rc, QX_ENOMEM);
            failures++;
        } else successes++;
        assert_int_equal(qx_ivf_check(ivf), 0); /* consistent after every failure */
        float dist[10];
        int64_t out[10];
        alloc_budget = budget;
        rc = qx_ivf_search(ivf, NULL, queries, 1, 10, NULL, dist, out);
        alloc_budget = -1;
        assert_true(rc == 0 || rc == QX_ENOMEM);
    }
    qx_set_allocator(NULL);
    assert_true(failures > 0);
    fprintf(stderr, "OOM injection: %d failed adds, %d succeeded\n", failures, successes);
    qx_ivf_free(ivf);
}

static void test_siftsmall_recall(void **state) {
    qx_matrix b = {0}, q = {0};
    int32_t *g = NULL;
    size_t gk;
    if (!tu_siftsmall(&b, &q, &g, &gk)) {
        fprintf(stderr, "siftsmall not found (QX_DATA_DIR or ../shared/data): skipping this case\n");
        skip();
    }
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = 15;
    fast_training(&ro);
    qx_quantizer *rq = NULL;
    assert_int_equal(qx_rq_new(&rq, b.d, &ro), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 64;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, b.d, rq, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, b.data, b.n), 0);
    int64_t *ids = malloc(sizeof(int64_t) * b.n);
    for (size_t i = 0; i < b.n; i++) ids[i] = (int64_t)i;
    assert_int_equal(qx_ivf_add(ivf, b.data, ids, b.n), 0);
    float *dist = malloc(sizeof(float) * q.n * 100);
    int64_t *res = malloc(sizeof(int64_t) * q.n * 100);
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 16;
    assert_int_equal(qx_ivf_search(ivf, NULL, q.data, q.n, 100, &p, dist, res), 0);
    size_t h1 = 0, h100 = 0;
    for (size_t i = 0; i < q.n; i++)
        for (size_t j = 0; j < 100; j++)
            if (res[i * 100 + j] == g[i * gk]) {
                h1 += j == 0;
                h100++;
                break;
            }
    fprintf(stderr, "siftsmall IVF64 16B nprobe 16: R@1 %.2f R@100 %.2f\n", h1 / (double)q.n, h100 / (double)q.n);
    assert_true(h1 >= q.n / 2);
    assert_true(h100 >= q.n * 9 / 10);
    free(ids);
    free(dist);
    free(res);
    qx_free(g);
    qx_matrix_free(&b);
    qx_matrix_free(&q);
    qx_ivf_free(ivf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_synthetic),
        cmocka_unit_test(test_filtered_search),
        cmocka_unit_test(test_search_among_ids),
        cmocka_unit_test(test_scan_matches_decoded),
        cmocka_unit_test(test_save_load_identical),
        cmocka_unit_test(test_corrupt_files_rejected),
        cmocka_unit_test(test_upsert_and_remove),
        cmocka_unit_test(test_inner_product),
        cmocka_unit_test(test_small_blocks_match_batch),
        cmocka_unit_test(test_locator_and_entries),
        cmocka_unit_test(test_encode_matches_add),
        cmocka_unit_test(test_add_records_parallel),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_oom_in_add_and_search),
        cmocka_unit_test(test_siftsmall_recall),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
