/* tests/test_vecfile.c — TEXMEX vector files (index/vecfile.c): round trips,
 * a hand-made .bvecs, every corrupt-file case (code + a message naming the
 * file and, where relevant, the record), writer failures, and the shared
 * datasets when present (skipped, saying so, otherwise). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "qinx/vecfile.h"
#include "testutil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Copy a tu_tmpfile path (static buffer) so several can be held at once. */
static char *tmp_path(const char *name) { return strdup(tu_tmpfile(name)); }

static void write_bytes(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A raw fvecs/ivecs image of n records of dimension d (4-byte values), with
 * values i*1000+j; the caller patches it to make it corrupt. */
static uint8_t *image(size_t n, size_t d, size_t *len) {
    size_t rec = 4 + 4 * d;
    uint8_t *buf = calloc(n, rec);
    for (size_t i = 0; i < n; i++) {
        int32_t dd = (int32_t)d;
        memcpy(buf + i * rec, &dd, 4);
        for (size_t j = 0; j < d; j++) {
            float v = (float)(i * 1000 + j);
            memcpy(buf + i * rec + 4 + 4 * j, &v, 4);
        }
    }
    *len = n * rec;
    return buf;
}

static void expect_fail(const char *path, int want, const char *needle) {
    qx_matrix m = {(float *)0x1, 7, 7};
    int rc = qx_vecs_read(path, 0, &m);
    if (rc != want)
        fail_msg("%s: got %d (%s), want %d; message: %s", path, rc, qx_strerror(rc), want,
                 qx_last_error());
    assert_null(m.data);
    assert_int_equal(m.n, 0);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!strstr(qx_last_error(), base)) fail_msg("message '%s' lacks the file name", qx_last_error());
    if (needle && !strstr(qx_last_error(), needle))
        fail_msg("message '%s' lacks '%s'", qx_last_error(), needle);
}

/* ---- round trips -------------------------------------------------------------- */

static void test_fvecs_roundtrip(void **state) {
    (void)state;
    const size_t n = 300, d = 17;
    float *x = tu_clustered(n, d, 5, 1);
    char *p = tmp_path("rt.fvecs");
    assert_int_equal(qx_fvecs_write(p, x, n, d), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((size_t)st.st_size, n * (4 + 4 * d));

    qx_matrix m;
    assert_int_equal(qx_vecs_read(p, 0, &m), 0);
    assert_int_equal(m.n, n);
    assert_int_equal(m.d, d);
    assert_int_equal((uintptr_t)m.data % 64, 0);
    assert_memory_equal(m.data, x, sizeof(float) * n * d);
    qx_matrix_free(&m);
    assert_null(m.data);
    qx_matrix_free(&m); /* twice is harmless */
    qx_matrix_free(NULL);

    /* max_n: a prefix; larger than the file: everything */
    assert_int_equal(qx_vecs_read(p, 10, &m), 0);
    assert_int_equal(m.n, 10);
    assert_memory_equal(m.data, x, sizeof(float) * 10 * d);
    qx_matrix_free(&m);
    assert_int_equal(qx_vecs_read(p, 100000, &m), 0);
    assert_int_equal(m.n, n);
    qx_matrix_free(&m);

    /* overwrite atomically with different content; no temp file left */
    assert_int_equal(qx_fvecs_write(p, x + d, 2, d), 0);
    assert_int_equal(qx_vecs_read(p, 0, &m), 0);
    assert_int_equal(m.n, 2);
    assert_memory_equal(m.data, x + d, sizeof(float) * 2 * d);
    qx_matrix_free(&m);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", p);
    *strrchr(dir, '/') = '\0';
    DIR *dh = opendir(dir);
    assert_non_null(dh);
    struct dirent *e;
    while ((e = readdir(dh)))
        if (strstr(e->d_name, ".tmp.")) fail_msg("temporary file %s left behind", e->d_name);
    closedir(dh);
    free(p), free(x);
}

static void test_ivecs_roundtrip(void **state) {
    (void)state;
    const size_t n = 50, d = 100;
    int32_t *ids = malloc(sizeof(int32_t) * n * d);
    for (size_t i = 0; i < n * d; i++) ids[i] = (int32_t)(i * 7919 % 1000003) - 5;
    char *p = tmp_path("gt.ivecs");
    assert_int_equal(qx_ivecs_write(p, ids, n, d), 0);
    int32_t *back = NULL;
    size_t bn = 0, bd = 0;
    assert_int_equal(qx_ivecs_read(p, 0, &back, &bn, &bd), 0);
    assert_int_equal(bn, n);
    assert_int_equal(bd, d);
    assert_memory_equal(back, ids, sizeof(int32_t) * n * d);
    qx_free(back);
    assert_int_equal(qx_ivecs_read(p, 3, &back, &bn, &bd), 0);
    assert_int_equal(bn, 3);
    qx_free(back);
    /* an .ivecs file is not a float matrix */
    qx_matrix m;
    assert_int_equal(qx_vecs_read(p, 0, &m), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "qx_ivecs_read"));
    free(p), free(ids);
}

static void test_bvecs_by_hand(void **state) {
    (void)state;
    const size_t n = 4, d = 5;
    uint8_t buf[4 * (4 + 5)];
    for (size_t i = 0; i < n; i++) {
        int32_t dd = (int32_t)d;
        memcpy(buf + i * (4 + d), &dd, 4);
        for (size_t j = 0; j < d; j++) buf[i * (4 + d) + 4 + j] = (uint8_t)(i * 60 + j * 13 + 3);
    }
    char *p = tmp_path("hand.bvecs");
    write_bytes(p, buf, sizeof buf);
    qx_matrix m;
    assert_int_equal(qx_vecs_read(p, 0, &m), 0);
    assert_int_equal(m.n, n);
    assert_int_equal(m.d, d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            assert_true(m.data[i * d + j] == (float)(uint8_t)(i * 60 + j * 13 + 3));
    qx_matrix_free(&m);
    /* 255 stays 255.0 (unsigned) */
    buf[4] = 255;
    write_bytes(p, buf, sizeof buf);
    assert_int_equal(qx_vecs_read(p, 1, &m), 0);
    assert_true(m.data[0] == 255.0f);
    qx_matrix_free(&m);
    /* truncated last record */
    write_bytes(p, buf, sizeof buf - 2);
    expect_fail(p, QX_EFORMAT, "record 3 truncated");
    free(p);
}

static void test_matrix_alloc(void **state) {
    (void)state;
    qx_matrix m;
    assert_int_equal(qx_matrix_alloc(&m, 33, 7), 0);
    assert_int_equal((uintptr_t)m.data % 64, 0);
    for (size_t i = 0; i < 33 * 7; i++) assert_true(m.data[i] == 0.0f);
    qx_matrix_free(&m);
    assert_int_equal(qx_matrix_alloc(&m, SIZE_MAX / 2, 3), QX_ENOMEM);
    assert_null(m.data);
    assert_int_equal(qx_matrix_alloc(NULL, 1, 1), QX_EINVAL);
}

/* ---- corrupt files ---------------------------------------------------------------- */

static void test_corrupt_files(void **state) {
    (void)state;
    size_t len;
    uint8_t *img = image(6, 4, &len); /* 6 records of 20 bytes */
    char *p = tmp_path("bad.fvecs");
    int32_t v;

    /* missing file */
    char *missing = tmp_path("nope.fvecs");
    expect_fail(missing, QX_ENOTFOUND, strerror(ENOENT));
    /* a directory */
    char *dirp = tmp_path("adir.fvecs");
    assert_int_equal(mkdir(dirp, 0755), 0);
    expect_fail(dirp, QX_EIO, "not a regular file");
    /* unknown ending */
    char *txt = tmp_path("vectors.txt");
    write_bytes(txt, img, len);
    expect_fail(txt, QX_EINVAL, ".fvecs or .bvecs");
    /* empty */
    write_bytes(p, img, 0);
    expect_fail(p, QX_EFORMAT, "empty");
    /* shorter than a dimension */
    write_bytes(p, img, 2);
    expect_fail(p, QX_EFORMAT, "record 0");
    /* dimension 0, negative, above QX_MAX_DIM */
    int32_t bad_dims[3] = {0, -3, QX_MAX_DIM + 1};
    for (int t = 0; t < 3; t++) {
        uint8_t *c = malloc(len);
        memcpy(c, img, len);
        memcpy(c, &bad_dims[t], 4);
        write_bytes(p, c, len);
        expect_fail(p, QX_EDIM, "record 0: dimension");
        free(c);
    }
    /* record 2 claims another dimension (file size still consistent) */
    uint8_t *c = malloc(len);
    memcpy(c, img, len);
    v = 5;
    memcpy(c + 2 * 20, &v, 4);
    write_bytes(p, c, len);
    expect_fail(p, QX_EDIM, "record 2: dimension 5 differs");
    /* truncated final record */
    write_bytes(p, img, len - 3);
    expect_fail(p, QX_EFORMAT, "record 5 truncated");
    /* only one record, truncated */
    write_bytes(p, img, 10);
    expect_fail(p, QX_EFORMAT, "record 0 truncated");
    /* a prefix read still notices a damaged tail (size not a whole number) */
    uint8_t *longer = calloc(1, len + 7);
    memcpy(longer, img, len);
    write_bytes(p, longer, len + 7);
    free(longer);
    qx_matrix m;
    assert_int_equal(qx_vecs_read(p, 2, &m), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "not a whole number"));
    assert_non_null(strstr(qx_last_error(), "bad.fvecs"));
    assert_null(m.data);
    /* NaN and Inf values */
    memcpy(c, img, len);
    float nanv = NAN, infv = -INFINITY;
    memcpy(c + 3 * 20 + 4 + 2 * 4, &nanv, 4);
    write_bytes(p, c, len);
    expect_fail(p, QX_EFORMAT, "record 3: component 2 is NaN");
    memcpy(c, img, len);
    memcpy(c + 1 * 20 + 4, &infv, 4);
    write_bytes(p, c, len);
    expect_fail(p, QX_EFORMAT, "record 1: component 0 is infinite");
    /* ...but a NaN past max_n is not read */
    assert_int_equal(qx_vecs_read(p, 1, &m), 0);
    qx_matrix_free(&m);

    /* ivecs: same validation, same messages */
    char *gi = tmp_path("bad.ivecs");
    write_bytes(gi, img, len - 1);
    int32_t *ids = (int32_t *)0x1;
    size_t n = 9, d = 9;
    assert_int_equal(qx_ivecs_read(gi, 0, &ids, &n, &d), QX_EFORMAT);
    assert_null(ids);
    assert_int_equal(n, 0);
    assert_non_null(strstr(qx_last_error(), "bad.ivecs"));
    assert_non_null(strstr(qx_last_error(), "record 5"));
    write_bytes(gi, img, 0);
    assert_int_equal(qx_ivecs_read(gi, 0, &ids, &n, &d), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "empty"));

    /* NULL arguments */
    assert_int_equal(qx_vecs_read(NULL, 0, &m), QX_EINVAL);
    assert_int_equal(qx_vecs_read(p, 0, NULL), QX_EINVAL);
    assert_int_equal(qx_ivecs_read(gi, 0, NULL, &n, &d), QX_EINVAL);
    free(c), free(img), free(p), free(missing), free(dirp), free(txt), free(gi);
}

static void test_writer_errors(void **state) {
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6};
    char *p = tmp_path("w.fvecs");
    assert_int_equal(qx_fvecs_write(p, x, 0, 3), QX_EINVAL);
    assert_int_equal(qx_fvecs_write(p, NULL, 2, 3), QX_EINVAL);
    assert_int_equal(qx_fvecs_write(p, x, 2, 0), QX_EDIM);
    assert_int_equal(qx_fvecs_write(p, x, 1, (size_t)QX_MAX_DIM + 1), QX_EDIM);
    x[4] = NAN;
    assert_int_equal(qx_fvecs_write(p, x, 2, 3), QX_EINVAL);
    assert_non_null(strstr(qx_last_error(), "vector 1, component 1"));
    x[4] = 5;
    /* the old file survives a failed write */
    assert_int_equal(qx_fvecs_write(p, x, 2, 3), 0);
    x[0] = INFINITY;
    assert_int_equal(qx_fvecs_write(p, x, 2, 3), QX_EINVAL);
    qx_matrix m;
    assert_int_equal(qx_vecs_read(p, 0, &m), 0);
    assert_true(m.data[0] == 1.0f && m.n == 2);
    qx_matrix_free(&m);
    /* a directory that does not exist */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.fvecs", tu_tmpdir());
    assert_int_equal(qx_fvecs_write(bad, x + 1, 1, 3), QX_EIO);
    assert_non_null(strstr(qx_last_error(), "x.fvecs"));
    assert_int_equal(qx_ivecs_write(bad, (const int32_t *)x, 1, 3), QX_EIO);
    free(p);
}

/* ---- out of memory through the allocator seam ---------------------------------- */

static int alloc_budget; /* allocations allowed before failing; <0 = unlimited */
static int alloc_live;   /* outstanding allocations made through the hooks */

static void *fail_malloc(size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    void *p = malloc(n);
    if (p) alloc_live++;
    return p;
}
static void *fail_realloc(void *p, size_t n) {
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    if (!p) alloc_live++;
    return realloc(p, n);
}
static void fail_free(void *p) {
    if (p) alloc_live--;
    free(p);
}

/* Every allocation of a read and of a write may fail: the call must report
 * QX_ENOMEM (or, for the writer, succeed without needing it) and leak
 * nothing. */
static void test_out_of_memory(void **state) {
    (void)state;
    const size_t n = 40, d = 8;
    float *x = tu_clustered(n, d, 3, 9);
    char *p = tmp_path("oom.fvecs");
    assert_int_equal(qx_fvecs_write(p, x, n, d), 0);
    qx_allocator hooks = {fail_malloc, fail_realloc, fail_free};
    qx_set_allocator(&hooks);
    int saw_enomem = 0, saw_ok = 0;
    for (int budget = 0; budget < 6; budget++) {
        alloc_budget = budget;
        alloc_live = 0;
        qx_matrix m;
        int rc = qx_vecs_read(p, 0, &m);
        if (rc == 0) {
            saw_ok = 1;
            assert_int_equal(m.n, n);
            qx_matrix_free(&m);
        } else {
            assert_int_equal(rc, QX_ENOMEM);
            assert_null(m.data);
            assert_non_null(strstr(qx_last_error(), "oom.fvecs"));
            saw_enomem = 1;
        }
        assert_int_equal(alloc_live, 0);

        alloc_budget = budget;
        alloc_live = 0;
        rc = qx_fvecs_write(p, x, n, d);
        if (rc != 0) assert_int_equal(rc, QX_ENOMEM);
        assert_int_equal(alloc_live, 0);

        alloc_budget = budget;
        alloc_live = 0;
        rc = qx_matrix_alloc(&m, n, d);
        if (rc == 0) qx_matrix_free(&m);
        else assert_int_equal(rc, QX_ENOMEM);
        assert_int_equal(alloc_live, 0);
    }
    qx_set_allocator(NULL);
    assert_true(saw_enomem && saw_ok);
    free(p), free(x);
}

/* ---- shared datasets -------------------------------------------------------------- */

static void test_siftsmall(void **state) {
    (void)state;
    const char *path = tu_data_path("siftsmall/siftsmall_base.fvecs");
    if (!path) {
        fprintf(stderr, "NOTE: siftsmall/siftsmall_base.fvecs not found under QX_DATA_DIR or "
                        "../shared/data: read test skipped\n");
        skip();
    }
    qx_matrix m;
    double t0 = now_s();
    assert_int_equal(qx_vecs_read(path, 0, &m), 0);
    double t = now_s() - t0;
    assert_int_equal(m.n, 10000);
    assert_int_equal(m.d, 128);
    /* SIFT descriptors: small non-negative integers */
    double sum = 0;
    for (size_t i = 0; i < m.n * m.d; i++) {
        assert_true(m.data[i] >= 0.0f && m.data[i] <= 255.0f);
        assert_true(m.data[i] == floorf(m.data[i]));
        sum += m.data[i];
    }
    assert_true(sum > 0);
    fprintf(stderr, "NOTE: read siftsmall_base.fvecs (10000 x 128) in %.1f ms\n", t * 1e3);
    assert_true(t < 1.0);
    qx_matrix_free(&m);

    const char *gt = tu_data_path("siftsmall/siftsmall_groundtruth.ivecs");
    if (gt) {
        int32_t *ids;
        size_t n, d;
        assert_int_equal(qx_ivecs_read(gt, 0, &ids, &n, &d), 0);
        assert_int_equal(n, 100);
        assert_int_equal(d, 100);
        for (size_t i = 0; i < n * d; i++) assert_true(ids[i] >= 0 && ids[i] < 10000);
        qx_free(ids);
    }
}

/* bigann10k: the queries are base vectors 0..99 (README), which checks the
 * .bvecs reader on real data. */
static void test_bigann_bvecs(void **state) {
    (void)state;
    const char *bp = tu_data_path("bigann10k/bigann10k_base.bvecs");
    if (!bp) {
        fprintf(stderr, "NOTE: bigann10k/bigann10k_base.bvecs not found: bvecs data test skipped\n");
        skip();
    }
    qx_matrix base;
    assert_int_equal(qx_vecs_read(bp, 0, &base), 0);
    assert_int_equal(base.n, 10000);
    assert_int_equal(base.d, 128);
    const char *qp = tu_data_path("bigann10k/bigann10k_query.bvecs");
    if (qp) {
        qx_matrix q;
        assert_int_equal(qx_vecs_read(qp, 0, &q), 0);
        assert_int_equal(q.n, 100);
        assert_memory_equal(q.data, base.data, sizeof(float) * 100 * 128);
        qx_matrix_free(&q);
    }
    qx_matrix_free(&base);
}

/* Larger synthetic file, for the speed claim (one allocation, chunked reads). */
static void test_read_speed(void **state) {
    (void)state;
    const size_t n = 50000, d = 100;
    float *x = tu_clustered(n, d, 10, 5);
    char *p = tmp_path("big.fvecs");
    assert_int_equal(qx_fvecs_write(p, x, n, d), 0);
    qx_matrix m;
    double t0 = now_s();
    assert_int_equal(qx_vecs_read(p, 0, &m), 0);
    double t = now_s() - t0;
    fprintf(stderr, "NOTE: read %zu x %zu fvecs (%.1f MB) in %.1f ms\n", n, d,
            (double)n * (4 + 4 * d) / 1e6, t * 1e3);
    assert_memory_equal(m.data, x, sizeof(float) * n * d);
    assert_true(t < 1.0);
    qx_matrix_free(&m);
    remove(p);
    free(p), free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fvecs_roundtrip),  cmocka_unit_test(test_ivecs_roundtrip),
        cmocka_unit_test(test_bvecs_by_hand),    cmocka_unit_test(test_matrix_alloc),
        cmocka_unit_test(test_corrupt_files),    cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_out_of_memory),    cmocka_unit_test(test_siftsmall),        cmocka_unit_test(test_bigann_bvecs),
        cmocka_unit_test(test_read_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
