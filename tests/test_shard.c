/* tests/test_shard.c — sharded indexes (qinx/shard.h) and reading vector
 * files by row ranges (qx_vecs_file): the manifest round trip and its
 * refusals (corrupt, truncated, missing or replaced shard, shards of another
 * model), shard search = single-index search, merge = single build byte for
 * byte, chunked adds = one add byte for byte, and row-range reads = the
 * whole-file reader. Synthetic data, fixed seeds, small sizes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qinx/qinx.h"
#include "testutil.h"

#define D 16
#define NB 3000
#define NQ 50

static float *base;

static qx_ivf *trained(const float *x, size_t n, uint64_t seed) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = 3;
    ro.train_beam = 1;
    ro.kmeans_iters = 5;
    ro.refine_iters = 0;
    ro.refine_min_per_codeword = 0;
    ro.seed = seed;
    qx_quantizer *q = NULL;
    assert_int_equal(qx_rq_new(&q, D, &ro), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 16;
    io.seed = seed;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, D, q, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, x, n), 0);
    return ivf;
}

static void add_rows(qx_ivf *ivf, size_t lo, size_t hi) {
    int64_t *ids = malloc(sizeof(int64_t) * (hi - lo + 1));
    for (size_t i = lo; i < hi; i++) ids[i - lo] = (int64_t)i;
    assert_int_equal(qx_ivf_add(ivf, base + lo * D, ids, hi - lo), 0);
    free(ids);
}

/* Trained once, saved as a clean copy; shards = copies with rows [a, b). */
static char dir[4096], single_path[4200], manifest_path[4200], shard_path[3][4200];
static const size_t cut[4] = {0, 1000, 2200, NB};

static void write_sharded(void) {
    qx_ivf *model = trained(base, NB, 7);
    assert_int_equal(qx_ivf_save(model, single_path), 0); /* empty model, reloaded per shard */
    qx_manifest m = {0};
    m.d = D, m.nlist = 16, m.code_size = 4, m.nshards = 3, m.rows = NB, m.metric = QX_METRIC_L2;
    m.shards = calloc(3, sizeof *m.shards);
    for (int s = 0; s < 3; s++) {
        qx_ivf *sh = NULL;
        assert_int_equal(qx_ivf_load(single_path, &sh), 0);
        add_rows(sh, cut[s], cut[s + 1]);
        assert_int_equal(qx_ivf_save(sh, shard_path[s]), 0);
        qx_ivf_free(sh);
        qx_shard_entry *e = &m.shards[s];
        e->row_begin = cut[s], e->row_end = cut[s + 1];
        assert_int_equal(qx_file_crc32(shard_path[s], &e->bytes, &e->crc), 0);
        snprintf(e->uri, sizeof e->uri, "file:shard-%d", s); /* relative to the manifest */
    }
    assert_int_equal(qx_manifest_write(manifest_path, &m), 0);
    free(m.shards);
    /* the single index: the same model, every row in one add */
    add_rows(model, 0, NB);
    assert_int_equal(qx_ivf_save(model, single_path), 0);
    qx_ivf_free(model);
}

static int setup(void **state) {
    (void)state;
    base = tu_clustered(NB + NQ, D, 20, 11);
    /* exact duplicates across shards (rows 3i of shard 0 again at 2000 + i,
     * in shards 1 and 2), and queries that are such rows: equal codes, so
     * equal distances, at the top of the answers */
    for (size_t i = 0; i < 300; i++) memcpy(base + (2000 + i) * D, base + 3 * i * D, sizeof(float) * D);
    for (size_t i = 0; i < NQ / 2; i++) memcpy(base + (NB + i) * D, base + 3 * i * D, sizeof(float) * D);
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(single_path, sizeof single_path, "%s/single.qinx", dir);
    snprintf(manifest_path, sizeof manifest_path, "%s/index.manifest", dir);
    for (int s = 0; s < 3; s++) snprintf(shard_path[s], sizeof shard_path[s], "%s/shard-%d", dir, s);
    write_sharded();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(base);
    return 0;
}

static void test_manifest_round_trip(void **state) {
    (void)state;
    assert_int_equal(qx_manifest_probe(manifest_path), 1);
    assert_int_equal(qx_manifest_probe(single_path), 0);
    qx_manifest m;
    assert_int_equal(qx_manifest_read(manifest_path, &m), 0);
    assert_int_equal(m.nshards, 3);
    assert_int_equal(m.rows, NB);
    assert_int_equal(m.d, D);
    assert_int_equal(m.shards[1].row_begin, 1000);
    assert_int_equal(m.shards[1].row_end, 2200);
    char p[4300];
    assert_int_equal(qx_manifest_shard_path(manifest_path, &m.shards[2], p, sizeof p), 0);
    assert_string_equal(p, shard_path[2]);
    /* another scheme is refused, by name */
    qx_shard_entry e = m.shards[0];
    snprintf(e.uri, sizeof e.uri, "qinx://10.0.0.2:6333/shard-0");
    assert_int_equal(qx_manifest_shard_path(manifest_path, &e, p, sizeof p), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "qinx://"));
    qx_manifest_free(&m);
}

/* The shards, searched and merged, answer what the single index answers,
 * bit for bit, duplicates included: equal distances are ordered by id in
 * both (ties_are_ordered_by_id: before, the heap kept them in scan order). */
static void test_sharded_search_equals_single(void **state) {
    (void)state;
    qx_sharded *s = NULL;
    qx_ivf *one = NULL;
    assert_int_equal(qx_sharded_open(&s, manifest_path), 0);
    assert_int_equal(qx_ivf_load(single_path, &one), 0);
    assert_int_equal(qx_sharded_count(s), 3);
    for (size_t k = 1; k <= 10; k += 9) {
        for (size_t rerank = 0; rerank <= 30; rerank += 30) {
            float *d1 = malloc(sizeof(float) * NQ * k), *d2 = malloc(sizeof(float) * NQ * k);
            int64_t *i1 = malloc(sizeof(int64_t) * NQ * k), *i2 = malloc(sizeof(int64_t) * NQ * k);
            qx_search_params sp;
            qx_search_params_init(&sp);
            sp.nprobe = 4;
            sp.threads = 1;
            sp.rerank = rerank;
            const float *q = base + (size_t)NB * D;
            assert_int_equal(qx_ivf_search(one, NULL, q, NQ, k, &sp, d1, i1), 0);
            assert_int_equal(qx_sharded_search(s, q, NQ, k, &sp, d2, i2), 0);
            size_t ties = 0;
            for (size_t i = 0; i < NQ * k; i++) {
                assert_memory_equal(&d1[i], &d2[i], sizeof(float));
                assert_int_equal(i1[i], i2[i]);
                if (i % k && d1[i] == d1[i - 1]) {
                    assert_true(i1[i] > i1[i - 1]);
                    ties++;
                }
            }
            if (k == 10) assert_true(ties >= NQ / 2); /* the duplicates did tie */
            if (k == 1) /* a duplicated query row: the smaller of its two ids */
                for (size_t i = 0; i < NQ / 2; i++)
                    if (i1[i] == (int64_t)(3 * i) || i1[i] == (int64_t)(2000 + i)) assert_int_equal(i1[i], 3 * i);
            free(d1), free(d2), free(i1), free(i2);
        }
    }
    qx_ivf_free(one);
    qx_sharded_free(s);
}

/* Merging the shards writes the single build's bytes. */
static void test_merge_equals_single_build(void **state) {
    (void)state;
    qx_ivf *merged = NULL;
    assert_int_equal(qx_sharded_merge(manifest_path, &merged), 0);
    assert_int_equal(qx_ivf_check(merged), 0);
    char mp[4300];
    snprintf(mp, sizeof mp, "%s/merged.qinx", dir);
    assert_int_equal(qx_ivf_save(merged, mp), 0);
    qx_ivf_free(merged);
    size_t la, lb;
    unsigned char *a = tu_file_read(mp, &la), *b = tu_file_read(single_path, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a), free(b);
}

/* Adds in 65536-row style chunks (here: uneven pieces) = one add. */
static void test_chunked_add_equals_one_add(void **state) {
    (void)state;
    qx_ivf *a = NULL;
    assert_int_equal(qx_ivf_load(single_path, &a), 0); /* holds every row already */
    qx_ivf *b = NULL;
    int64_t *all = malloc(sizeof(int64_t) * NB);
    for (size_t i = 0; i < NB; i++) all[i] = (int64_t)i;
    assert_int_equal(qx_ivf_load(single_path, &b), 0);
    size_t removed = 0;
    assert_int_equal(qx_ivf_remove(b, all, NB, &removed), 0);
    assert_int_equal(removed, NB);
    for (size_t lo = 0; lo < NB; lo += 700) add_rows(b, lo, lo + 700 < NB ? lo + 700 : NB);
    char pa[4300], pb[4300];
    snprintf(pa, sizeof pa, "%s/a.qinx", dir);
    snprintf(pb, sizeof pb, "%s/b.qinx", dir);
    assert_int_equal(qx_ivf_save(a, pa), 0);
    assert_int_equal(qx_ivf_save(b, pb), 0);
    size_t la, lb;
    unsigned char *x = tu_file_read(pa, &la), *y = tu_file_read(pb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(x, y, la);
    free(x), free(y), free(all);
    qx_ivf_free(a);
    qx_ivf_free(b);
}

/* Restore a file's bytes after a test damaged it. */
static void with_damage(const char *path, void (*damage)(unsigned char *, size_t *), int want_rc,
                        const char *want_msg) {
    size_t len;
    unsigned char *orig = tu_file_read(path, &len), *bad = malloc(len + 1);
    memcpy(bad, orig, len);
    size_t blen = len;
    damage(bad, &blen);
    tu_file_write(path, bad, blen);
    qx_sharded *s = NULL;
    int rc = qx_sharded_open(&s, manifest_path);
    if (rc != want_rc || !strstr(qx_last_error(), want_msg))
        fprintf(stderr, "rc %d, message: %s (wanted '%s')\n", rc, qx_last_error(), want_msg);
    assert_int_equal(rc, want_rc);
    assert_null(s);
    assert_non_null(strstr(qx_last_error(), want_msg));
    tu_file_write(path, orig, len);
    assert_int_equal(qx_sharded_open(&s, manifest_path), 0);
    qx_sharded_free(s);
    free(orig), free(bad);
}

static void flip_middle(unsigned char *p, size_t *len) { p[*len / 2] ^= 0x10; }
static void flip_digit(unsigned char *p, size_t *len) {
    /* a row boundary digit: "rows 1000" -> "rows 1001" */
    char *at = strstr((char *)p, "rows 1000 ");
    assert_non_null(at);
    at[8] = '1';
    (void)len;
}
static void cut_tail(unsigned char *p, size_t *len) { (void)p, *len -= 12; }

static void test_corrupt_manifest_refused(void **state) {
    (void)state;
    with_damage(manifest_path, flip_digit, QX_EFORMAT, "CRC mismatch");
    with_damage(manifest_path, cut_tail, QX_EFORMAT, "manifest");
}

static void test_corrupt_or_replaced_shard_refused(void **state) {
    (void)state;
    with_damage(shard_path[1], flip_middle, QX_EFORMAT, "shard 1");
    with_damage(shard_path[2], cut_tail, QX_EFORMAT, "corrupt or not the one the manifest names");
}

static void test_missing_shard_refused(void **state) {
    (void)state;
    char moved[4400];
    snprintf(moved, sizeof moved, "%s.away", shard_path[2]);
    assert_int_equal(rename(shard_path[2], moved), 0);
    qx_sharded *s = NULL;
    assert_int_equal(qx_sharded_open(&s, manifest_path), QX_ENOTFOUND);
    assert_non_null(strstr(qx_last_error(), "shard 2"));
    assert_non_null(strstr(qx_last_error(), "missing"));
    assert_int_equal(rename(moved, shard_path[2]), 0);
}

/* A shard trained apart (another seed) is refused by search and merge. */
static void test_shard_of_another_model_refused(void **state) {
    (void)state;
    qx_ivf *other = trained(base, NB, 99), *one = NULL;
    add_rows(other, 0, 10);
    assert_int_equal(qx_ivf_load(single_path, &one), 0);
    assert_int_equal(qx_ivf_append(one, other), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "trained apart"));
    /* same model, overlapping ids: refused, destination unchanged */
    qx_ivf *dup = NULL;
    assert_int_equal(qx_ivf_load(single_path, &dup), 0);
    assert_int_equal(qx_ivf_append(one, dup), QX_EEXIST);
    assert_int_equal(qx_ivf_check(one), 0);
    qx_ivf_free(other), qx_ivf_free(one), qx_ivf_free(dup);
}

/* Row-range reads equal the whole-file reader, for .fvecs and .bvecs, and a
 * rewritten file is noticed. */
static void test_row_ranges_equal_whole_read(void **state) {
    (void)state;
    char fv[4300], bv[4300];
    snprintf(fv, sizeof fv, "%s/x.fvecs", dir);
    snprintf(bv, sizeof bv, "%s/x.bvecs", dir);
    assert_int_equal(qx_fvecs_write(fv, base, 500, D), 0);
    FILE *f = fopen(bv, "wb");
    for (int i = 0; i < 500; i++) {
        int32_t d = D;
        fwrite(&d, 4, 1, f);
        for (int j = 0; j < D; j++) fputc((i * 7 + j * 13) & 255, f);
    }
    fclose(f);
    const char *paths[2] = {fv, bv};
    for (int t = 0; t < 2; t++) {
        qx_matrix all;
        assert_int_equal(qx_vecs_read(paths[t], 0, &all), 0);
        qx_vecs_file *vf = NULL;
        assert_int_equal(qx_vecs_open(&vf, paths[t]), 0);
        assert_int_equal(qx_vecs_file_rows(vf), 500);
        assert_int_equal(qx_vecs_file_dim(vf), D);
        float *part = malloc(sizeof(float) * 500 * D);
        assert_int_equal(qx_vecs_read_rows(vf, 123, 300, part), 0);
        assert_memory_equal(part, all.data + 123 * D, sizeof(float) * 300 * D);
        size_t rows[5] = {0, 1, 2, 250, 499};
        assert_int_equal(qx_vecs_read_picked(vf, rows, 5, part), 0);
        for (int r = 0; r < 5; r++) assert_memory_equal(part + r * D, all.data + rows[r] * D, sizeof(float) * D);
        assert_int_equal(qx_vecs_read_rows(vf, 400, 101, part), QX_EINVAL);
        assert_int_equal(qx_vecs_file_unchanged(vf), 0);
        free(part);
        qx_matrix_free(&all);
        if (t == 0) { /* rewrite: same path, new size */
            assert_int_equal(qx_fvecs_write(fv, base, 400, D), 0);
            assert_int_equal(qx_vecs_file_unchanged(vf), QX_EFORMAT);
            assert_non_null(strstr(qx_last_error(), "changed while it was read"));
        }
        qx_vecs_close(vf);
    }
    /* a truncated file is refused at open */
    assert_int_equal(truncate(bv, 500 * (4 + D) - 3), 0);
    qx_vecs_file *vf = NULL;
    assert_int_equal(qx_vecs_open(&vf, bv), QX_EFORMAT);
    assert_null(vf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_round_trip),
        cmocka_unit_test(test_sharded_search_equals_single),
        cmocka_unit_test(test_merge_equals_single_build),
        cmocka_unit_test(test_chunked_add_equals_one_add),
        cmocka_unit_test(test_corrupt_manifest_refused),
        cmocka_unit_test(test_corrupt_or_replaced_shard_refused),
        cmocka_unit_test(test_missing_shard_refused),
        cmocka_unit_test(test_shard_of_another_model_refused),
        cmocka_unit_test(test_row_ranges_equal_whole_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
