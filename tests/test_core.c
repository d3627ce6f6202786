/* tests/test_core.c — the core layer (core/): the atomic file writer and the
 * directory fsync rule, the JSON string escaper, the evenly spaced sample,
 * the top-k heap (against a sort, and the stable finish the RQ beam relies
 * on), and the table of quantizer kinds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "internal.h"
#include "json.h"
#include "qinx/core.h"
#include "qinx/quantizer.h"
#include "testutil.h"
#include "topk.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static size_t count_entries(const char *dir) {
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_write_atomic_replaces_and_leaves_no_temporary(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s", tu_tmpfile("a.bin"));
    assert_int_equal(qx_write_atomic(path, "old contents", 12), 0);
    assert_int_equal(qx_write_atomic(path, "new", 3), 0);
    size_t len;
    char *got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "new", 3);
    free(got);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(count_entries(dir), 1); /* no a.bin.tmp.* left */
    /* an empty file is a file too */
    assert_int_equal(qx_write_atomic(path, "", 0), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

static void test_write_atomic_failure_is_eio_and_keeps_target(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/no/such/dir/x.bin", tu_tmpdir());
    assert_int_equal(qx_write_atomic(path, "x", 1), QX_EIO);
    assert_non_null(strstr(qx_last_error(), "x.bin"));
    /* streaming form: abort leaves the old file as it was */
    snprintf(path, sizeof path, "%s", tu_tmpfile("kept.bin"));
    assert_int_equal(qx_write_atomic(path, "keep", 4), 0);
    qx__afile f;
    assert_int_equal(qx__afile_open(&f, path), 0);
    assert_int_equal(qx__afile_write(&f, "half", 4), 0);
    qx__afile_abort(&f);
    size_t len;
    char *got = slurp(path, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(got, "keep", 4);
    free(got);
    /* and commit after pieces publishes them all */
    assert_int_equal(qx__afile_open(&f, path), 0);
    assert_int_equal(qx__afile_write(&f, "ab", 2), 0);
    assert_int_equal(qx__afile_write(&f, "cd", 2), 0);
    assert_int_equal(qx__afile_commit(&f), 0);
    got = slurp(path, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(got, "abcd", 4);
    free(got);
}

static void test_fsync_dir_rule(void **state) {
    (void)state;
    assert_int_equal(qx_fsync_dir(tu_tmpfile("anything")), 0); /* its directory exists */
    char path[4200];
    snprintf(path, sizeof path, "%s/missing/file", tu_tmpdir());
    assert_int_equal(qx_fsync_dir(path), QX_EIO);
}

static void put_buf(void *ctx, const char *p, size_t n) { strncat((char *)ctx, p, n); }

static void test_json_string_escapes(void **state) {
    (void)state;
    char out[256] = "";
    qx__json_string(put_buf, out, "a\"b\\c\nd\x01\x1f" "\xc3\xa9 e\x7f");
    assert_string_equal(out, "\"a\\\"b\\\\c\\u000ad\\u0001\\u001f\xc3\xa9 e\x7f\"");
    out[0] = '\0';
    qx__json_string(put_buf, out, "");
    assert_string_equal(out, "\"\"");
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    qx_json_fputs(f, "path/with \"quotes\"\t");
    fclose(f);
    assert_string_equal(mem, "\"path/with \\\"quotes\\\"\\u0009\"");
    free(mem);
}

static void test_sample_index_is_exact_floor(void **state) {
    (void)state;
    for (size_t n = 1; n < 200; n++)
        for (size_t m = 1; m <= n; m++)
            for (size_t i = 0; i < m; i++) {
                size_t got = qx_sample_index(i, n, m);
                assert_int_equal(got, i * n / m);
                if (i) assert_true(got > qx_sample_index(i - 1, n, m));
            }
    /* beyond what a double holds exactly: i*n = 2^70 + ... */
    size_t n = ((size_t)1 << 40) + 3, m = ((size_t)1 << 30) + 1, i = m - 1;
    unsigned __int128 want = (unsigned __int128)i * n / m;
    assert_true(qx_sample_index(i, n, m) == (size_t)want);
    float x[12], out[6];
    for (int k = 0; k < 12; k++) x[k] = (float)k;
    qx_sample_rows(x, 6, 2, 3, out); /* rows 0, 2, 4 */
    float want_rows[6] = {0, 1, 4, 5, 8, 9};
    assert_memory_equal(out, want_rows, sizeof want_rows);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_topk_keeps_k_smallest(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    enum { N = 1000, K = 37 };
    float all[N], key[K];
    uint64_t val[K];
    qx__topk h = {key, val, K, 0};
    for (int i = 0; i < N; i++) {
        all[i] = (float)(tu_rng_next(&r) % 500); /* many ties */
        qx__topk_push(&h, all[i], (uint64_t)i);
    }
    qx__topk_sort(&h);
    qsort(all, N, sizeof *all, cmp_float);
    assert_int_equal(h.n, K);
    for (int i = 0; i < K; i++) assert_true(key[i] == all[i]);
    /* the small sort is stable: equal keys keep their order */
    float k2[6] = {3, 1, 2, 1, 3, 1};
    uint64_t v2[6] = {0, 1, 2, 3, 4, 5};
    qx__topk s = {k2, v2, 6, 6};
    qx__topk_sort_small(&s);
    uint64_t want[6] = {1, 3, 5, 2, 0, 4};
    assert_memory_equal(v2, want, sizeof want);
}

/* The sliced CRC-32 against the bit-at-a-time definition, for every length
 * 0..300 at every alignment 0..7, chained in two parts, and the check value
 * of "123456789" (0xCBF43926). */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

static void test_crc32_matches_bitwise(void **state) {
    (void)state;
    assert_int_equal(qx_crc32(0, "123456789", 9), 0xCBF43926u);
    static uint8_t buf[320];
    uint64_t r = 7;
    for (size_t i = 0; i < sizeof buf; i++) r = r * 6364136223846793005ULL + 1, buf[i] = (uint8_t)(r >> 56);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 308; n++) {
            uint32_t want = crc_bitwise(0, buf + off, n);
            assert_int_equal(qx_crc32(0, buf + off, n), want);
            size_t h = n / 3;
            assert_int_equal(qx_crc32(qx_crc32(0, buf + off, h), buf + off + h, n - h), want);
        }
}

/* qx_crc32_combine: CRC(A || B) from the two parts' CRCs for every split of
 * buffers up to 300 bytes, an empty part on either side, and a long B
 * (1 MiB: the length's high bits). */
static void test_crc32_combine_equals_whole(void **state) {
    (void)state;
    static uint8_t buf[1 << 20];
    uint64_t r = 11;
    for (size_t i = 0; i < sizeof buf; i++) r = r * 6364136223846793005ULL + 1, buf[i] = (uint8_t)(r >> 56);
    for (size_t n = 0; n <= 300; n += 7)
        for (size_t h = 0; h <= n; h++) {
            uint32_t a = qx_crc32(0, buf, h), b = qx_crc32(0, buf + h, n - h);
            assert_int_equal(qx_crc32_combine(a, b, n - h), qx_crc32(0, buf, n));
        }
    uint32_t a = qx_crc32(0, buf, 4097), b = qx_crc32(0, buf + 4097, sizeof buf - 4097);
    assert_int_equal(qx_crc32_combine(a, b, sizeof buf - 4097), qx_crc32(0, buf, sizeof buf));
    assert_int_equal(qx_crc32_combine(a, 0, 0), a);
}

static void test_quantizer_kind_table(void **state) {
    (void)state;
    assert_string_equal(qx_quantizer_kind_name(QX_QUANT_RQ), "rq");
    assert_string_equal(qx_quantizer_kind_name(QX_QUANT_QINCO), "qinco");
    assert_string_equal(qx_quantizer_kind_name((qx_quant_kind)99), "unknown");
    /* a blob of an unknown kind is a format error naming the kind */
    uint8_t blob[20] = {'Q', 'X', 'Q', 'Z', 1, 0, 0, 0, 99, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0};
    qx_quantizer *q = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, sizeof blob, &q), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "unknown kind 99"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_atomic_replaces_and_leaves_no_temporary),
        cmocka_unit_test(test_write_atomic_failure_is_eio_and_keeps_target),
        cmocka_unit_test(test_fsync_dir_rule),
        cmocka_unit_test(test_json_string_escapes),
        cmocka_unit_test(test_sample_index_is_exact_floor),
        cmocka_unit_test(test_topk_keeps_k_smallest),
        cmocka_unit_test(test_crc32_matches_bitwise),
        cmocka_unit_test(test_crc32_combine_equals_whole),
        cmocka_unit_test(test_quantizer_kind_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
