/* tests/test_storage.c — unit tests of the server's storage: point ids, the
 * pid hash map, sealed and mutable segments, tombstone files, the manifest
 * (round trip, a flipped byte at every offset, truncation at every length),
 * the store over segments (upserts, overwrites, deletes and payloads across
 * checkpoints and reopening, exact search against brute force), the
 * write-ahead log (round trip, torn tails at every byte, corruption before
 * the tail refused with its offset and the file kept, salvage, group
 * commit) and the reader of the format before segments (upgrade).
 * The server sources are compiled in directly (they need only the core
 * library). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "qinx/ivf.h"
#include "qinx/rq.h"

/* small pieces, so that start-up's checks run in many pieces on every core
 * (combined CRCs, per-thread list counts) even on these small files */
#define CODES_PIECE ((size_t)97)
#define CRC_PAR_MIN ((size_t)64)
#include "../server/manifest.c"
#include "../server/par.c"
#include "../server/rowmap.c"
#include "../server/segcodes.c"
#include "../server/segment.c"
#include "../server/store.c"
#include "../server/wal.c"

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static uint8_t *slurp(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void spit(const char *p, const uint8_t *b, size_t len) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* a fresh empty directory under the test tmpdir */
static const char *fresh_dir(const char *name) {
    static char buf[4][PATH_MAX];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, PATH_MAX, "%s", tu_tmpfile(name));
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char f[PATH_MAX + 300];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            unlink(f);
        }
        closedir(d);
    }
    mkdir(p, 0755);
    return p;
}

static qxs_pid mkpid(uint64_t i) {
    if (i % 5 == 4) { /* every fifth id a UUID */
        uint8_t b[16];
        uint64_t h = i * 0x9E3779B97F4A7C15ull;
        for (int k = 0; k < 8; k++) b[k] = (uint8_t)(h >> (56 - 8 * k));
        for (int k = 8; k < 16; k++) b[k] = (uint8_t)(i >> (8 * (k - 8)));
        return qxs_pid_uuid(b);
    }
    return qxs_pid_u64(i * 1000003u);
}

/* ---- point ids and the pid map ---------------------------------------------------------------- */

static void test_pid_basics(void **state) {
    (void)state;
    uint8_t u[16] = {0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00};
    qxs_pid a = qxs_pid_uuid(u), b = qxs_pid_u64(5), c;
    char s[QXS_PID_STRLEN];
    assert_string_equal(qxs_pid_format(&a, s), "550e8400-e29b-41d4-a716-446655440000");
    assert_string_equal(qxs_pid_format(&b, s), "5");
    /* integers sort before UUIDs; the integer 5 is not the UUID ...0005 */
    assert_true(qxs_pid_cmp(&b, &a) < 0);
    uint8_t five[16] = {0};
    five[15] = 5;
    c = qxs_pid_uuid(five);
    assert_false(qxs_pid_eq(&b, &c));
    uint8_t disk[QXS_PID_DISK];
    qxs_pid_put(disk, &a);
    qxs_pid r;
    assert_int_equal(qxs_pid_read(disk, &r), 0);
    assert_true(qxs_pid_eq(&r, &a));
    disk[0] = 7;
    assert_int_equal(qxs_pid_read(disk, &r), -1);
}

static void test_pidmap_vs_reference(void **state) {
    (void)state;
    qxs_pidmap m = {0};
    enum { N = 5000 };
    static int32_t ref[N];
    for (int i = 0; i < N; i++) ref[i] = -1;
    tu_rng r;
    tu_rng_seed(&r, 3);
    for (int step = 0; step < 40000; step++) {
        uint64_t i = tu_rng_next(&r) % N;
        qxs_pid p = mkpid(i);
        int op = (int)(tu_rng_next(&r) % 3);
        if (op < 2) {
            assert_int_equal(qxs_pidmap_put(&m, &p, (uint32_t)step), 0);
            ref[i] = step;
        } else {
            assert_int_equal(qxs_pidmap_del(&m, &p), ref[i] >= 0);
            ref[i] = -1;
        }
        if (step % 997 == 0) {
            size_t cnt = 0;
            for (int k = 0; k < N; k++) {
                qxs_pid q = mkpid((uint64_t)k);
                uint32_t row;
                int f = qxs_pidmap_get(&m, &q, &row);
                assert_int_equal(f, ref[k] >= 0);
                if (f) assert_int_equal(row, (uint32_t)ref[k]);
                cnt += ref[k] >= 0;
            }
            assert_int_equal(m.count, cnt);
        }
    }
    qxs_pidmap_free(&m);
}

/* ---- segments ------------------------------------------------------------------------ */

static void fill_mseg(qxs_mseg *m, size_t n, size_t d, const float *x) {
    char pay[64];
    for (size_t i = 0; i < n; i++) {
        qxs_pid p = mkpid(i);
        int l = i % 3 ? snprintf(pay, sizeof pay, "{\"i\":%zu}", i) : 0;
        assert_int_equal(qxs_mseg_reserve(m, 1, (size_t)l), 0);
        qxs_mseg_append(m, &p, x + i * d, (const uint8_t *)pay, (uint32_t)l);
    }
}

static void test_segment_roundtrip_and_corruption(void **state) {
    (void)state;
    const size_t n = 700, d = 12;
    float *x = tu_clustered(n, d, 5, 9);
    const char *dir = fresh_dir("segdir");
    qxs_mseg m;
    qxs_mseg_init(&m, 3, d);
    fill_mseg(&m, n, d, x);
    /* a rewrite of id 10 inside the mutable segment: its old row dies */
    qxs_pid p10 = mkpid(10);
    uint32_t old = 0;
    assert_true(qxs_pidmap_get(&m.map, &p10, &old));
    qxs_mseg_kill(&m, old);
    assert_int_equal(qxs_mseg_reserve(&m, 1, 2), 0);
    uint32_t r10 = qxs_mseg_append(&m, &p10, x, (const uint8_t *)"{}", 2);
    assert_int_equal(m.ndead, 1);
    uint64_t bytes;
    assert_int_equal(qxs_seg_write(dir, &m, &bytes), 0);
    qxs_seg *g = NULL;
    for (int on_disk = 0; on_disk < 2; on_disk++) {
        assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 0, on_disk, &g), 0);
        memcpy(g->dead, m.dead, (m.n + 63) / 64 * 8);
        g->ndead = m.ndead;
        for (size_t i = 0; i < n; i++) {
            qxs_pid p = mkpid(i);
            long row = qxs_seg_find(g, &p);
            assert_true(row >= 0);
            if (i == 10) {
                assert_int_equal(row, r10);
                continue;
            }
            assert_int_equal(row, (long)i);
            assert_memory_equal(qxs_seg_vec(g, (uint32_t)row), x + i * d, d * 4);
            uint32_t l;
            const uint8_t *pl = qxs_seg_payload(g, (uint32_t)row, &l);
            char want[64];
            int wl = i % 3 ? snprintf(want, sizeof want, "{\"i\":%zu}", i) : 0;
            assert_int_equal(l, (uint32_t)wl);
            if (wl) assert_memory_equal(pl, want, (size_t)wl);
        }
        qxs_pid absent = qxs_pid_u64(1);
        assert_int_equal(qxs_seg_find(g, &absent), -1);
        assert_int_equal(qxs_seg_verify(g), 0);
        /* tombstones: kill a few, save, reopen with them */
        qxs_seg_kill(g, 5);
        qxs_seg_kill(g, 6);
        assert_int_equal(qxs_seg_save_dead(g, dir, 11, NULL), 0);
        qxs_seg_close(g);
        assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 11, on_disk, &g), 0);
        assert_int_equal(g->ndead, 3);
        qxs_pid p5 = mkpid(5);
        assert_int_equal(qxs_seg_find(g, &p5), -1);
        qxs_seg_close(g);
    }
    /* wrong row count (manifest disagrees) and a missing tombstone file */
    assert_int_equal(qxs_seg_open(dir, 3, d, m.n + 1, 0, 1, &g), QX_EFORMAT);
    assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 12, 1, &g), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "seg-00000003.del.12"));
    /* a flipped byte in the header, ids, order or payload offsets: refused
     * naming the file; in the vectors: found by qxs_seg_verify */
    char path[PATH_MAX];
    qxs_seg_name(path, sizeof path, dir, 3);
    size_t len;
    uint8_t *orig = slurp(path, &len);
    uint64_t offs[8];
    memcpy(offs, orig + 16, sizeof offs);
    size_t probes[] = {0, 9, 20, 90, QXS_SEG_HDR + 3, (size_t)offs[2] + 1, (size_t)offs[4] + 8};
    for (size_t t = 0; t < sizeof probes / sizeof *probes; t++) {
        uint8_t *b = malloc(len);
        memcpy(b, orig, len);
        b[probes[t]] ^= 0x10;
        spit(path, b, len);
        assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 0, 1, &g), QX_EFORMAT);
        assert_non_null(strstr(qx_last_error(), "seg-00000003.dat"));
        free(b);
    }
    uint8_t *b = malloc(len);
    memcpy(b, orig, len);
    b[offs[3] + 17] ^= 0x01; /* a vector byte */
    spit(path, b, len);
    assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 0, 1, &g), 0);
    assert_int_equal(qxs_seg_verify(g), QX_EFORMAT);
    qxs_seg_close(g);
    spit(path, orig, len - 1); /* truncated */
    assert_int_equal(qxs_seg_open(dir, 3, d, m.n, 0, 1, &g), QX_EFORMAT);
    free(b);
    free(orig);
    qxs_mseg_free(&m);
    free(x);
}

/* ---- manifest -------------------------------------------------------------------------- */

static void test_manifest_every_byte(void **state) {
    (void)state;
    const char *dir = fresh_dir("mandir");
    qxs_manifest m = {.d = 128, .lsn = 4242, .next_seg = 9, .index_gen = 3, .nseg = 3};
    qxs_manifest_seg segs[3] = {{1, 1000, 0, 3}, {4, 200, 17, 0}, {7, 5, 4242, 3}};
    m.segs = segs;
    assert_int_equal(qxs_manifest_write(dir, &m), 0);
    qxs_manifest r;
    assert_int_equal(qxs_manifest_read(dir, &r), 0);
    assert_int_equal(r.d, 128);
    assert_int_equal(r.lsn, 4242);
    assert_int_equal(r.next_seg, 9);
    assert_int_equal(r.index_gen, 3);
    assert_int_equal(r.nseg, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.segs[i].no, segs[i].no);
        assert_int_equal(r.segs[i].n, segs[i].n);
        assert_int_equal(r.segs[i].del_gen, segs[i].del_gen);
        assert_int_equal(r.segs[i].codes_gen, segs[i].codes_gen);
    }
    assert_int_equal(r.version, QXS_MANIFEST_VERSION);
    qxs_manifest_free(&r);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    size_t len;
    uint8_t *orig = slurp(path, &len);
    /* every bit of every byte flipped: always refused, naming the file */
    for (size_t off = 0; off < len; off++)
        for (int bit = 0; bit < 8; bit++) {
            orig[off] ^= (uint8_t)(1u << bit);
            qxs_manifest q;
            int rc = qxs_manifest_decode(orig, len, path, &q);
            if (rc != QX_EFORMAT) fail_msg("flip of bit %d at byte %zu accepted", bit, off);
            assert_non_null(strstr(qx_last_error(), "MANIFEST"));
            orig[off] ^= (uint8_t)(1u << bit);
        }
    /* truncated at every length, and one byte too many */
    for (size_t l = 0; l < len; l++) {
        spit(path, orig, l);
        assert_int_equal(qxs_manifest_read(dir, &r), QX_EFORMAT);
        assert_non_null(strstr(qx_last_error(), path));
    }
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, orig, len);
    spit(path, longer, len + 1);
    assert_int_equal(qxs_manifest_read(dir, &r), QX_EFORMAT);
    unlink(path);
    assert_int_equal(qxs_manifest_read(dir, &r), QX_ENOTFOUND);
    free(longer);
    free(orig);
}


/* ---- codes files: the index's entries, written once per segment --------------------------- */

static qx_ivf *train_small(const float *x, size_t n, size_t d) {
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = 7;
    ro.train_beam = 1;
    ro.kmeans_iters = 8;
    ro.refine_iters = 0;
    ro.refine_min_per_codeword = 0;
    qx_quantizer *q = NULL;
    assert_int_equal(qx_rq_new(&q, d, &ro), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 16;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, d, q, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, x, n), 0);
    return ivf;
}

static void index_keys(qx_ivf *ivf, const qxs_store *s, const int64_t *old, const int64_t *nk, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (old && old[i] >= 0) assert_int_equal(qx_ivf_remove(ivf, &old[i], 1, NULL), 0);
        if (nk && nk[i] >= 0) assert_int_equal(qx_ivf_add(ivf, qxs_store_vec(s, nk[i]), &nk[i], 1), 0);
    }
}

/* reopen dir: the model file + the segments' codes files give the same entries */
static int reload(const char *dir, size_t d, const char *model, qxs_store *s2, qx_ivf **out, qxs_rowmap **rm) {
    int fresh;
    assert_int_equal(qxs_store_open(s2, dir, d, 1, &fresh), 0);
    assert_int_equal(qx_ivf_load(model, out), 0);
    assert_int_equal(qxs_rowmap_attach(*out, rm), 0);
    int rc = qxs_store_codes_load(s2, *out, *rm);
    qx_ivf_info info;
    qx_ivf_get_info(*out, &info);
    if (rc) assert_int_equal(info.ntotal, 0); /* every file is checked before any entry is added */
    return rc;
}

static void test_store_codes_files(void **state) {
    (void)state;
    const size_t d = 16, n = 2000;
    float *x = tu_clustered(n + 100, d, 12, 33);
    const char *dir = fresh_dir("codesdir");
    char model[PATH_MAX], cpath[PATH_MAX];
    snprintf(model, sizeof model, "%s/index-1.qx", dir);
    qxs_store s;
    int fresh;
    assert_int_equal(qxs_store_open(&s, dir, d, 1, &fresh), 0);
    qxs_pid *ids = malloc((n + 100) * sizeof *ids);
    for (size_t i = 0; i < n + 100; i++) ids[i] = mkpid(i);
    int64_t *ok = malloc((n + 100) * sizeof *ok), *nk = malloc((n + 100) * sizeof *nk);
    assert_int_equal(qxs_store_reserve(&s, n, 0), 0);
    qxs_store_upsert(&s, ids, x, NULL, n, ok, nk);
    qx_ivf *ivf = train_small(x, n, d);
    qxs_rowmap *rm = NULL;
    assert_int_equal(qxs_rowmap_attach(ivf, &rm), 0);
    index_keys(ivf, &s, NULL, nk, n);
    assert_int_equal(qx_ivf_save_model(ivf, model), 0);
    qxs_ckpt ck;
    assert_int_equal(qxs_store_ckpt_prepare(&s, 1, 1, ivf, &ck), 0);
    qxs_store_ckpt_commit(&s, &ck, 1, 1);
    uint64_t first = ck.bytes;
    qxs_codes_name(cpath, sizeof cpath, dir, 1, 1);
    assert_int_equal(file_size(cpath), 48 + (long)n * (4 + 8) + 4);
    /* 1 % new points, 3 overwrites, 2 deletes: the checkpoint writes the new
     * segment, its codes, one tombstone file and the manifest, not the index */
    assert_int_equal(qxs_store_reserve(&s, 23, 0), 0);
    qxs_store_upsert(&s, ids + n, x + n * d, NULL, 20, ok, nk);
    index_keys(ivf, &s, ok, nk, 20);
    qxs_store_upsert(&s, ids + 1, x + (n + 50) * d, NULL, 3, ok, nk);
    index_keys(ivf, &s, ok, nk, 3);
    size_t removed;
    qxs_store_delete(&s, ids + 10, 2, ok, &removed);
    assert_int_equal(removed, 2);
    index_keys(ivf, &s, ok, NULL, 2);
    assert_int_equal(qxs_store_ckpt_prepare(&s, 2, 1, ivf, &ck), 0);
    qxs_store_ckpt_commit(&s, &ck, 2, 1);
    qxs_store_gc(&s);
    assert_true(ck.bytes * 20 < first);
    assert_int_equal(file_size(cpath), 48 + (long)n * (4 + 8) + 4); /* untouched */
    qxs_codes_name(cpath, sizeof cpath, dir, 2, 1);
    assert_int_equal(file_size(cpath), 48 + 23L * (4 + 8) + 4);
    /* reopen: every live row's entry is back, dead rows are not */
    qxs_store s2;
    qx_ivf *back = NULL;
    qxs_rowmap *rm2 = NULL;
    assert_int_equal(reload(dir, d, model, &s2, &back, &rm2), 0);
    qx_ivf_info a, b;
    qx_ivf_get_info(ivf, &a);
    qx_ivf_get_info(back, &b);
    assert_int_equal(a.ntotal, n + 20 - 2);
    assert_int_equal(b.ntotal, a.ntotal);
    assert_int_equal(qx_ivf_check(back), 0);
    size_t counted = 0; /* the row map counted its entries after the bulk load */
    for (size_t i = 0; i < rm2->n; i++) counted += rm2->v[i].count;
    assert_int_equal(counted, b.ntotal);
    assert_int_equal(rm2->bulk, 0);
    size_t rows = qxs_store_rows(&s2);
    uint32_t l1, l2;
    uint8_t c1[8], c2[8];
    for (size_t r = 0; r < rows; r++) {
        int64_t key = qxs_store_row_key(&s2, r);
        assert_int_equal(qx_ivf_get_entries(ivf, &key, 1, &l1, c1), 0);
        assert_int_equal(qx_ivf_get_entries(back, &key, 1, &l2, c2), 0);
        assert_int_equal(l1, l2);
        assert_memory_equal(c1, c2, 8);
        assert_int_equal(l2 != UINT32_MAX, qxs_store_live(&s2, key));
    }
    qx_ivf_free(back);
    qxs_rowmap_free(rm2);
    qxs_store_free(&s2);
    /* a corrupt codes file is refused, naming it: every header byte, body
     * bytes, the checksum, truncation and absence */
    size_t len;
    uint8_t *orig = slurp(cpath, &len);
    size_t offs[64], no = 0;
    for (size_t o = 0; o < 48; o++) offs[no++] = o;
    for (size_t o = 48; o < len && no < 62; o += 17) offs[no++] = o;
    offs[no++] = len - 1;
    for (size_t t = 0; t < no; t++) {
        orig[offs[t]] ^= 0x10;
        spit(cpath, orig, len);
        int rc = reload(dir, d, model, &s2, &back, &rm2);
        if (rc == 0) fail_msg("flip at byte %zu of %s accepted", offs[t], cpath);
        assert_non_null(strstr(qx_last_error(), cpath));
        qx_ivf_free(back);
        qxs_rowmap_free(rm2);
        qxs_store_free(&s2);
        orig[offs[t]] ^= 0x10;
    }
    for (size_t l = 0; l < len; l += len / 7) {
        spit(cpath, orig, l);
        assert_int_not_equal(reload(dir, d, model, &s2, &back, &rm2), 0);
        assert_non_null(strstr(qx_last_error(), cpath));
        qx_ivf_free(back);
        qxs_rowmap_free(rm2);
        qxs_store_free(&s2);
    }
    unlink(cpath);
    assert_int_not_equal(reload(dir, d, model, &s2, &back, &rm2), 0);
    assert_non_null(strstr(qx_last_error(), cpath));
    qx_ivf_free(back);
    qxs_rowmap_free(rm2);
    qxs_store_free(&s2);
    spit(cpath, orig, len);
    assert_int_equal(reload(dir, d, model, &s2, &back, &rm2), 0);
    qx_ivf_free(back);
    qxs_rowmap_free(rm2);
    qxs_store_free(&s2);
    free(orig);
    qx_ivf_free(ivf);
    qxs_rowmap_free(rm);
    qxs_store_free(&s);
    free(ids);
    free(ok);
    free(nk);
    free(x);
}

/* A version-1 manifest (24-byte entries, no codes generation) is read. */
static void test_manifest_v1_read(void **state) {
    (void)state;
    uint8_t b[48 + 24 + 4] = {0};
    memcpy(b, "QXMAN001", 8);
    man_wr32(b + 8, 1);
    man_wr32(b + 12, 8);
    man_wr64(b + 16, 77);
    man_wr32(b + 24, 3);
    man_wr32(b + 28, 1);
    man_wr64(b + 32, 2);
    man_wr32(b + 48, 2);
    man_wr64(b + 56, 500);
    man_wr64(b + 64, 9);
    man_wr32(b + 72, qx_crc32(0, b, 72));
    qxs_manifest m;
    assert_int_equal(qxs_manifest_decode(b, sizeof b, "MANIFEST", &m), 0);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.index_gen, 2);
    assert_int_equal(m.nseg, 1);
    assert_int_equal(m.segs[0].no, 2);
    assert_int_equal(m.segs[0].n, 500);
    assert_int_equal(m.segs[0].del_gen, 9);
    assert_int_equal(m.segs[0].codes_gen, 0);
    qxs_manifest_free(&m);
}

/* ---- the store over segments ------------------------------------------------------------------ */

/* reference model: per id index its vector row in x (or -1) and payload tag */
typedef struct model {
    size_t nid;
    long *row;   /* which row of x the id holds, -1 absent */
    int *tag;    /* payload "{"t":tag}" or -1 for none */
} model;

static void check_store(const qxs_store *s, const model *md, const float *x, size_t d) {
    size_t live = 0;
    for (size_t i = 0; i < md->nid; i++) {
        qxs_pid p = mkpid(i);
        int64_t key = qxs_store_find(s, &p);
        if (md->row[i] < 0) {
            assert_int_equal(key, -1);
            continue;
        }
        live++;
        assert_true(key >= 0);
        assert_true(qxs_store_live(s, key));
        assert_memory_equal(qxs_store_vec(s, key), x + (size_t)md->row[i] * d, d * 4);
        qxs_pid back;
        assert_int_equal(qxs_store_pid(s, key, &back), 0);
        assert_true(qxs_pid_eq(&back, &p));
        uint32_t l;
        const uint8_t *pl = qxs_store_payload(s, key, &l);
        char want[32];
        int wl = md->tag[i] >= 0 ? snprintf(want, sizeof want, "{\"t\":%d}", md->tag[i]) : 0;
        assert_int_equal(l, (uint32_t)wl);
        if (wl) assert_memory_equal(pl, want, (size_t)wl);
    }
    assert_int_equal(s->n_live, live);
}

static void brute_check(const qxs_store *s, const model *md, const float *x, size_t d, const float *q) {
    const size_t k = 10;
    float dist[10], best[10];
    int64_t keys[10];
    size_t found;
    assert_int_equal(qxs_store_search(s, q, k, 0, dist, keys, &found), 0);
    for (size_t j = 0; j < k; j++) best[j] = INFINITY;
    size_t live = 0;
    for (size_t i = 0; i < md->nid; i++) {
        if (md->row[i] < 0) continue;
        live++;
        float dd = 0;
        for (size_t t = 0; t < d; t++) {
            float e = q[t] - x[(size_t)md->row[i] * d + t];
            dd += e * e;
        }
        if (dd < best[k - 1]) {
            size_t p = k - 1;
            while (p > 0 && best[p - 1] > dd) best[p] = best[p - 1], p--;
            best[p] = dd;
        }
    }
    assert_int_equal(found, live < k ? live : k);
    for (size_t j = 0; j < found; j++) assert_true(fabsf(dist[j] - best[j]) <= 1e-3f * (1 + best[j]));
}

static void ckpt(qxs_store *s, uint64_t lsn) {
    qxs_ckpt ck;
    assert_int_equal(qxs_store_ckpt_prepare(s, lsn, 0, NULL, &ck), 0);
    qxs_store_ckpt_commit(s, &ck, lsn, 0);
    qxs_store_gc(s);
}

static void test_store_across_checkpoints(void **state) {
    (void)state;
    const size_t d = 16, nid = 600, nx = 4000;
    float *x = tu_clustered(nx, d, 8, 21);
    const char *dir = fresh_dir("storedir");
    qxs_store s;
    int fresh = 0;
    assert_int_equal(qxs_store_open(&s, dir, d, 1, &fresh), 0);
    assert_true(fresh);
    model md = {nid, malloc(nid * sizeof(long)), malloc(nid * sizeof(int))};
    for (size_t i = 0; i < nid; i++) md.row[i] = -1, md.tag[i] = -1;
    tu_rng r;
    tu_rng_seed(&r, 5);
    uint64_t lsn = 0;
    size_t xi = 0;
    for (int round = 0; round < 6; round++) {
        for (int op = 0; op < 300; op++) {
            uint64_t i = tu_rng_next(&r) % nid;
            qxs_pid p = mkpid(i);
            int kind = (int)(tu_rng_next(&r) % 4);
            lsn++;
            if (kind < 3) {
                char pay[32];
                int tag = kind == 0 ? -1 : (int)(tu_rng_next(&r) % 1000);
                int l = tag >= 0 ? snprintf(pay, sizeof pay, "{\"t\":%d}", tag) : 0;
                qxs_bytes b = {(const uint8_t *)pay, (uint32_t)l};
                assert_int_equal(qxs_store_reserve(&s, 1, (size_t)l), 0);
                int64_t ok, nk;
                qxs_store_upsert(&s, &p, x + (xi % nx) * d, &b, 1, &ok, &nk);
                assert_int_equal(ok >= 0, md.row[i] >= 0);
                assert_true(nk >= 0);
                md.row[i] = (long)(xi % nx);
                md.tag[i] = tag;
                xi++;
            } else {
                size_t removed;
                int64_t ok;
                qxs_store_delete(&s, &p, 1, &ok, &removed);
                assert_int_equal(removed, md.row[i] >= 0);
                md.row[i] = -1;
                md.tag[i] = -1;
            }
        }
        check_store(&s, &md, x, d);
        brute_check(&s, &md, x, d, x + 17 * d);
        ckpt(&s, lsn);
        assert_int_equal(s.mut.n, 0);
        check_store(&s, &md, x, d);
        /* reopen from disk: the same points, vectors through the mapping (or RAM) */
        qxs_store_free(&s);
        assert_int_equal(qxs_store_open(&s, dir, d, round % 2, &fresh), 0);
        assert_false(fresh);
        assert_int_equal(s.lsn, lsn);
        check_store(&s, &md, x, d);
        brute_check(&s, &md, x, d, x + 33 * d);
    }
    /* superseded tombstone files were removed: one per segment at most */
    DIR *dd = opendir(dir);
    struct dirent *e;
    size_t ndel = 0, nseg = 0;
    while ((e = readdir(dd)) != NULL) {
        if (strstr(e->d_name, ".del.")) ndel++;
        if (strstr(e->d_name, ".dat")) nseg++;
        assert_null(strstr(e->d_name, ".tmp"));
    }
    closedir(dd);
    assert_int_equal(nseg, s.nsegs);
    assert_true(ndel <= s.nsegs);
    /* a checkpoint costs what was written since the last one: 10 upserts
     * into a store of 6 segments write one small segment, not the store */
    qxs_store_mem mem;
    qxs_store_memory(&s, &mem);
    qxs_ckpt ck;
    for (int i = 0; i < 10; i++) {
        qxs_pid p = mkpid((uint64_t)i + 100000);
        assert_int_equal(qxs_store_reserve(&s, 1, 0), 0);
        qxs_store_upsert(&s, &p, x, NULL, 1, NULL, NULL);
    }
    assert_int_equal(qxs_store_ckpt_prepare(&s, lsn + 1, 0, NULL, &ck), 0);
    assert_true(ck.bytes < QXS_SEG_HDR + 10 * (d * 4 + 64) + 8192);
    assert_true(ck.bytes < mem.disk_bytes / 4);
    qxs_store_ckpt_commit(&s, &ck, lsn + 1, 0);
    qxs_store_free(&s);
    free(md.row);
    free(md.tag);
    free(x);
}

/* A merge folds segments into one, preserving every live point (vector,
 * payload, id) and dropping dead rows; rows killed between prepare and
 * commit stay dead; the renames cover exactly the moved rows. */
static void test_store_merge_preserves_live(void **state) {
    (void)state;
    const size_t d = 8, nid = 400, nx = 3000;
    float *x = tu_clustered(nx, d, 4, 8);
    const char *dir = fresh_dir("mergedir");
    qxs_store s;
    assert_int_equal(qxs_store_open(&s, dir, d, 1, NULL), 0);
    model md = {nid, malloc(nid * sizeof(long)), malloc(nid * sizeof(int))};
    for (size_t i = 0; i < nid; i++) md.row[i] = -1, md.tag[i] = -1;
    tu_rng r;
    tu_rng_seed(&r, 9);
    size_t xi = 0;
    uint64_t lsn = 0;
    for (int seg = 0; seg < 5; seg++) {
        for (int op = 0; op < 200; op++) {
            uint64_t i = tu_rng_next(&r) % nid;
            qxs_pid p = mkpid(i);
            if (tu_rng_next(&r) % 5) {
                char pay[32];
                int tag = (int)(tu_rng_next(&r) % 100);
                int l = snprintf(pay, sizeof pay, "{\"t\":%d}", tag);
                qxs_bytes b = {(const uint8_t *)pay, (uint32_t)l};
                assert_int_equal(qxs_store_reserve(&s, 1, (size_t)l), 0);
                qxs_store_upsert(&s, &p, x + (xi % nx) * d, &b, 1, NULL, NULL);
                md.row[i] = (long)(xi++ % nx);
                md.tag[i] = tag;
            } else {
                qxs_store_delete(&s, &p, 1, NULL, NULL);
                md.row[i] = md.tag[i] = -1;
            }
        }
        ckpt(&s, ++lsn);
    }
    assert_int_equal(s.nsegs, 5);
    uint32_t nos[8];
    size_t k = qxs_store_merge_pick(&s, 2, SIZE_MAX, nos, 8);
    assert_int_equal(k, 5);
    size_t rows_before = qxs_store_rows(&s), live_before = s.n_live;
    uint32_t new_no = s.mut.no;
    s.mut.no++; /* the mutable segment is empty: it takes the next number */
    qxs_merge mg;
    assert_int_equal(qxs_store_merge_prepare(&s, nos, k, new_no, &mg), 0);
    assert_int_equal(mg.nmoved, live_before);
    /* a delete between prepare and commit */
    size_t vi = 0;
    while (md.row[vi] < 0) vi++;
    qxs_pid victim = mkpid(vi);
    size_t removed;
    qxs_store_delete(&s, &victim, 1, NULL, &removed);
    assert_int_equal(removed, 1);
    md.row[vi] = md.tag[vi] = -1;
    qxs_store_merge_commit(&s, &mg);
    for (size_t i = 0; i < mg.nmoved; i++) assert_int_equal(qxs_rowkey_seg(mg.new_keys[i]), new_no);
    qxs_store_merge_free(&mg);
    assert_int_equal(s.nsegs, 1);
    assert_true(qxs_store_rows(&s) < rows_before);
    check_store(&s, &md, x, d);
    brute_check(&s, &md, x, d, x + 5 * d);
    ckpt(&s, ++lsn);
    qxs_store_free(&s);
    assert_int_equal(qxs_store_open(&s, dir, d, 1, NULL), 0);
    assert_int_equal(s.nsegs, 1);
    check_store(&s, &md, x, d);
    size_t nfiles = 0;
    DIR *dd = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dd)) != NULL) nfiles += strstr(e->d_name, ".dat") != NULL;
    closedir(dd);
    assert_int_equal(nfiles, 1); /* the sources were removed */
    /* a flipped raw-vector byte is found before a merge would copy it under a
     * fresh checksum: refused, naming the file, nothing written */
    for (int k = 0; k < 2; k++) { /* a second segment to merge with */
        qxs_pid p = mkpid(100000 + (uint64_t)k);
        assert_int_equal(qxs_store_reserve(&s, 1, 0), 0);
        qxs_store_upsert(&s, &p, x, NULL, 1, NULL, NULL);
        ckpt(&s, ++lsn);
    }
    assert_true(s.nsegs >= 2);
    const qxs_seg *g0 = s.segs[0];
    uint64_t vo = seg_rd64(g0->map + 40);
    int fd = open(g0->path, O_WRONLY);
    uint8_t bad = (uint8_t)(g0->map[vo + 6] ^ 0x40);
    assert_int_equal(pwrite(fd, &bad, 1, (off_t)(vo + 6)), 1);
    close(fd);
    uint32_t two[2] = {s.segs[0]->no, s.segs[1]->no};
    assert_int_equal(qxs_store_merge_prepare(&s, two, 2, s.mut.no + 5, &mg), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), g0->path));
    assert_non_null(strstr(qx_last_error(), "raw vectors"));
    qxs_store_free(&s);
    free(md.row);
    free(md.tag);
    free(x);
}

/* A torn or corrupt segment named by the manifest stops the open, naming it. */
static void test_store_refuses_bad_segment(void **state) {
    (void)state;
    const size_t d = 8;
    float *x = tu_clustered(50, d, 2, 1);
    const char *dir = fresh_dir("badseg");
    qxs_store s;
    assert_int_equal(qxs_store_open(&s, dir, d, 1, NULL), 0);
    for (size_t i = 0; i < 50; i++) {
        qxs_pid p = mkpid(i);
        assert_int_equal(qxs_store_reserve(&s, 1, 0), 0);
        qxs_store_upsert(&s, &p, x + i * d, NULL, 1, NULL, NULL);
    }
    ckpt(&s, 1);
    qxs_store_free(&s);
    char path[PATH_MAX];
    qxs_seg_name(path, sizeof path, dir, 1);
    assert_int_equal(truncate(path, file_size(path) - 3), 0);
    assert_int_equal(qxs_store_open(&s, dir, d, 1, NULL), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "seg-00000001.dat"));
    unlink(path);
    assert_int_equal(qxs_store_open(&s, dir, d, 1, NULL), QX_EFORMAT);
    assert_non_null(strstr(qx_last_error(), "seg-00000001.dat"));
    free(x);
}

/* ---- WAL ---------------------------------------------------------------------- */

typedef struct seen {
    int nrec;
    uint64_t lsn[128];
    uint32_t n[128];
    qxs_pid first_id[128];
    float first_val[128];
    uint32_t first_plen[128];
} seen;

static int on_rec(void *ctx, const qxs_wal_rec *r) {
    seen *s = ctx;
    if (s->nrec < 128) {
        s->lsn[s->nrec] = r->lsn;
        s->n[s->nrec] = r->n;
        assert_int_equal(qxs_wal_rec_pid(r, 0, &s->first_id[s->nrec]), 0);
        if (r->vecs) memcpy(&s->first_val[s->nrec], r->vecs, 4);
        s->first_plen[s->nrec] = 0;
        if (r->plens) memcpy(&s->first_plen[s->nrec], r->plens, 4);
    }
    s->nrec++;
    return 0;
}

static void write_log(const char *path, int nrec, size_t d) {
    qxs_wal w;
    unlink(path);
    assert_int_equal(qxs_wal_open(&w, path, d, NULL, NULL, NULL), 0);
    for (int r = 0; r < nrec; r++) {
        qxs_pid ids[3] = {mkpid((uint64_t)r * 10), mkpid((uint64_t)r * 10 + 1), mkpid((uint64_t)r * 10 + 4)};
        float x[3 * 8];
        for (int i = 0; i < 3 * 8; i++) x[i] = (float)(r + i);
        qxs_bytes p[3] = {{(const uint8_t *)"{\"a\":1}", 7}, {NULL, 0}, {(const uint8_t *)"{}", 2}};
        int rc;
        if (r % 3 == 2) rc = qxs_wal_append(&w, QXS_WAL_DELETE2, (uint64_t)r + 1, ids, NULL, NULL, 2, d);
        else if (r % 5 == 4) rc = qxs_wal_append(&w, QXS_WAL_PAYLOAD, (uint64_t)r + 1, ids, NULL, p, 3, d);
        else rc = qxs_wal_append(&w, QXS_WAL_UPSERT2, (uint64_t)r + 1, ids, x, r % 2 ? p : NULL, 3, d);
        assert_int_equal(rc, 0);
        assert_int_equal(qxs_wal_sync(&w, (uint64_t)r + 1), 0);
    }
    qxs_wal_close(&w);
}

static void test_wal_roundtrip(void **state) {
    (void)state;
    const char *p = tu_tmpfile("wal_rt.log");
    write_log(p, 9, 8);
    seen s = {0};
    qxs_wal w;
    qxs_wal_status st;
    assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &st), 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.corrupt_at, -1);
    assert_int_equal(s.nrec, 9);
    for (int r = 0; r < 9; r++) {
        assert_int_equal(s.lsn[r], r + 1);
        assert_int_equal(s.n[r], r % 3 == 2 ? 2 : 3);
        qxs_pid want = mkpid((uint64_t)r * 10);
        assert_true(qxs_pid_eq(&s.first_id[r], &want));
        if (r % 3 != 2 && r % 5 != 4) assert_true(s.first_val[r] == (float)r);
        if (r % 3 != 2 && (r % 5 == 4 || r % 2)) assert_int_equal(s.first_plen[r], 7);
    }
    qxs_wal_close(&w);
    /* the format before segments (type 1/2 records, u64 ids) still replays */
    const char *lp = tu_tmpfile("wal_legacy.log");
    unlink(lp);
    assert_int_equal(qxs_wal_open(&w, lp, 8, NULL, NULL, NULL), 0);
    int64_t ids[2] = {77, 78};
    float x[16] = {3};
    assert_int_equal(qxs_wal_append_legacy(&w, QXS_WAL_UPSERT, 1, ids, x, 2, 8), 0);
    assert_int_equal(qxs_wal_append_legacy(&w, QXS_WAL_DELETE, 2, ids, NULL, 1, 8), 0);
    qxs_wal_close(&w);
    seen s2 = {0};
    assert_int_equal(qxs_wal_open(&w, lp, 8, on_rec, &s2, &st), 0);
    assert_int_equal(s2.nrec, 2);
    assert_int_equal(s2.first_id[0].lo, 77);
    assert_true(s2.first_val[0] == 3.0f);
    qxs_wal_close(&w);
}

/* Record boundaries of a log file. */
static int bounds_of(const uint8_t *buf, size_t size, long *bounds, int cap) {
    int nb = 0;
    for (size_t off = 0; off < size && nb < cap;) {
        uint32_t len;
        memcpy(&len, buf + off, 4);
        off += 8 + len;
        bounds[nb++] = (long)off;
    }
    return nb;
}

/* Cut the log at every byte: a torn tail. Replay yields exactly the records
 * wholly before the cut, drops the rest and truncates the file there. */
static void test_wal_torn_every_byte(void **state) {
    (void)state;
    const char *full = tu_tmpfile("wal_full.log");
    write_log(full, 5, 8);
    size_t size;
    uint8_t *buf = slurp(full, &size);
    long bounds[16];
    int nb = bounds_of(buf, size, bounds, 16);
    assert_int_equal(nb, 5);
    const char *p = tu_tmpfile("wal_cut.log");
    for (long cut = 0; cut <= (long)size; cut++) {
        spit(p, buf, (size_t)cut);
        int whole = 0;
        while (whole < nb && bounds[whole] <= cut) whole++;
        seen s = {0};
        qxs_wal w;
        qxs_wal_status st;
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &st), 0);
        assert_int_equal(st.corrupt_at, -1);
        assert_int_equal(s.nrec, whole);
        long good = whole ? bounds[whole - 1] : 0;
        assert_int_equal((long)st.dropped, cut - good);
        assert_int_equal(file_size(p), good);
        /* an append after recovery follows the good prefix */
        qxs_pid id = qxs_pid_u64(4242);
        float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(qxs_wal_append(&w, QXS_WAL_UPSERT2, 100, &id, x, NULL, 1, 8), 0);
        qxs_wal_close(&w);
        seen s2 = {0};
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s2, &st), 0);
        assert_int_equal(s2.nrec, whole + 1);
        assert_int_equal(s2.first_id[whole].lo, 4242);
        assert_int_equal(st.dropped, 0);
        qxs_wal_close(&w);
    }
    free(buf);
}

/* Issue 19 item 9: a flipped byte in record 26 of 50. Replay keeps records
 * 1-25, stops with the byte offset, leaves the file untouched and refuses
 * appends; salvage then recovers every record but the damaged one. Every
 * byte of a smaller log flipped: a record before the last is never dropped
 * silently. */
static void test_wal_corruption_before_tail(void **state) {
    (void)state;
    const char *p = tu_tmpfile("wal_mid.log");
    write_log(p, 50, 8);
    size_t size;
    uint8_t *orig = slurp(p, &size);
    long bounds[64];
    assert_int_equal(bounds_of(orig, size, bounds, 64), 50);
    long rec26 = bounds[24]; /* start of record 26 */
    long places[] = {rec26, rec26 + 5, rec26 + 8, rec26 + 8 + 3, rec26 + 8 + 20, bounds[25] - 1};
    for (size_t t = 0; t < sizeof places / sizeof *places; t++) {
        uint8_t *b = malloc(size);
        memcpy(b, orig, size);
        b[places[t]] ^= 0x04;
        spit(p, b, size);
        seen s = {0};
        qxs_wal w;
        qxs_wal_status st;
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &st), 0);
        assert_int_equal(s.nrec, 25);
        assert_int_equal(st.corrupt_at, rec26);
        assert_int_equal(st.next_valid, bounds[25]);
        assert_non_null(strstr(qx_last_error(), "wal_mid.log"));
        char off[32];
        snprintf(off, sizeof off, "offset %ld", rec26);
        assert_non_null(strstr(qx_last_error(), off));
        assert_true(w.failed);
        qxs_pid id = qxs_pid_u64(1);
        float x[8] = {0};
        assert_int_equal(qxs_wal_append(&w, QXS_WAL_UPSERT2, 999, &id, x, NULL, 1, 8), QX_EIO);
        qxs_wal_close(&w);
        size_t len2;
        uint8_t *now = slurp(p, &len2);
        assert_int_equal(len2, size); /* kept as it was */
        assert_memory_equal(now, b, size);
        free(now);
        /* salvage: 49 records kept, the damaged one lost, the original kept aside */
        uint64_t kept, lost;
        char backup[PATH_MAX];
        assert_int_equal(qxs_wal_salvage(p, 8, &kept, &lost, backup, sizeof backup), 0);
        assert_int_equal(kept, 49);
        assert_int_equal(lost, bounds[25] - rec26);
        assert_int_equal(file_size(backup), (long)size);
        unlink(backup);
        seen s3 = {0};
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s3, &st), 0);
        assert_int_equal(st.corrupt_at, -1);
        assert_int_equal(s3.nrec, 49);
        assert_int_equal(s3.lsn[25], 27);
        qxs_wal_close(&w);
        free(b);
    }
    free(orig);
    /* every byte of a 6-record log */
    const char *q = tu_tmpfile("wal_every.log");
    write_log(q, 6, 8);
    orig = slurp(q, &size);
    int nb = bounds_of(orig, size, bounds, 64);
    for (size_t off = 0; off < size; off++) {
        uint8_t *b = malloc(size);
        memcpy(b, orig, size);
        b[off] ^= 0x80;
        spit(q, b, size);
        int rec = 0;
        while (bounds[rec] <= (long)off) rec++;
        seen s = {0};
        qxs_wal w;
        qxs_wal_status st;
        assert_int_equal(qxs_wal_open(&w, q, 8, on_rec, &s, &st), 0);
        assert_int_equal(s.nrec, rec);
        if (rec < nb - 1) {
            if (st.corrupt_at != (rec ? bounds[rec - 1] : 0)) fail_msg("byte %zu (record %d): not reported", off, rec + 1);
        } else {
            assert_int_equal(st.corrupt_at, -1); /* the last record: a torn tail */
            assert_int_equal((long)st.dropped, (long)size - bounds[nb - 2]);
        }
        qxs_wal_close(&w);
        free(b);
    }
    free(orig);
}

static void test_wal_parse_garbage(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    uint8_t g[512];
    for (int t = 0; t < 2000; t++) {
        size_t n = tu_rng_next(&r) % sizeof g;
        for (size_t i = 0; i < n; i++) g[i] = (uint8_t)tu_rng_next(&r);
        if (n >= 4 && t % 2) { /* plausible lengths */
            uint32_t l = (uint32_t)(tu_rng_next(&r) % 600);
            memcpy(g, &l, 4);
        }
        int e;
        qxs_wal_status st;
        size_t good = qxs_wal_parse(g, n, 8, NULL, NULL, &e, &st);
        assert_true(good <= n);
    }
}

typedef struct gc_arg {
    qxs_wal *w;
    pthread_mutex_t *mu;
    uint64_t *lsn;
} gc_arg;

static void *gc_writer(void *p) {
    gc_arg *a = p;
    for (int i = 0; i < 50; i++) {
        qxs_pid id = qxs_pid_u64((uint64_t)i);
        float x[4] = {0};
        pthread_mutex_lock(a->mu);
        uint64_t l = ++*a->lsn;
        assert_int_equal(qxs_wal_append(a->w, QXS_WAL_UPSERT2, l, &id, x, NULL, 1, 4), 0);
        pthread_mutex_unlock(a->mu);
        assert_int_equal(qxs_wal_sync(a->w, l), 0);
        assert_true(atomic_load(&a->w->synced_lsn) >= l);
    }
    return NULL;
}

static void test_wal_group_commit(void **state) {
    (void)state;
    const char *p = tu_tmpfile("wal_gc.log");
    unlink(p);
    qxs_wal w;
    assert_int_equal(qxs_wal_open(&w, p, 4, NULL, NULL, NULL), 0);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    uint64_t lsn = 0;
    gc_arg a = {&w, &mu, &lsn};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, gc_writer, &a);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    qxs_wal_close(&w);
    seen s = {0};
    assert_int_equal(qxs_wal_open(&w, p, 4, on_rec, &s, NULL), 0);
    assert_int_equal(s.nrec, 200);
    for (int i = 0; i < 64; i++) assert_int_equal(s.lsn[i], i + 1); /* WAL order = lsn order */
    assert_int_equal(qxs_wal_reset(&w, p), 0);
    assert_int_equal(file_size(p), 0);
    qxs_wal_close(&w);
}

/* ---- the format before segments ---------------------------------------------------------- */

static void write_legacy_snapshot(const char *path, const int64_t *ids, const float *x, size_t n, size_t d,
                                  uint64_t lsn) {
    uint8_t hdr[32];
    uint32_t d32 = (uint32_t)d, zero = 0;
    uint64_t n64 = n;
    memcpy(hdr, "QXSNAP01", 8);
    memcpy(hdr + 8, &d32, 4);
    memcpy(hdr + 12, &zero, 4);
    memcpy(hdr + 16, &n64, 8);
    memcpy(hdr + 24, &lsn, 8);
    uint32_t crc = qx_crc32(0, hdr + 8, 24);
    crc = qx_crc32(crc, ids, n * 8);
    crc = qx_crc32(crc, x, n * d * 4);
    FILE *f = fopen(path, "wb");
    fwrite(hdr, 1, 32, f);
    fwrite(ids, 8, n, f);
    fwrite(x, 4, n * d, f);
    fwrite(&crc, 4, 1, f);
    fclose(f);
}

static void test_legacy_snapshot(void **state) {
    (void)state;
    const size_t n = 300, d = 16;
    float *x = tu_clustered(n, d, 5, 3);
    int64_t ids[300];
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i * 1000003;
    const char *p = tu_tmpfile("legacy_snap.bin");
    write_legacy_snapshot(p, ids, x, n, d, 77);
    int64_t *gi;
    float *gx;
    size_t gn;
    uint64_t lsn;
    assert_int_equal(qxs_legacy_snapshot_read(p, d, &gi, &gx, &gn, &lsn), 0);
    assert_int_equal(gn, n);
    assert_int_equal(lsn, 77);
    assert_memory_equal(gi, ids, n * 8);
    assert_memory_equal(gx, x, n * d * 4);
    qx_free(gi);
    qx_aligned_free(gx);
    assert_int_equal(qxs_legacy_snapshot_read(p, d + 1, &gi, &gx, &gn, &lsn), QX_EFORMAT);
    long size = file_size(p);
    for (long off = 8; off < size; off += 397) {
        write_legacy_snapshot(p, ids, x, n, d, 77);
        FILE *f = fopen(p, "r+b");
        fseek(f, off, SEEK_SET);
        int c = fgetc(f);
        fseek(f, off, SEEK_SET);
        fputc(c ^ 1, f);
        fclose(f);
        assert_int_equal(qxs_legacy_snapshot_read(p, d, &gi, &gx, &gn, &lsn), QX_EFORMAT);
    }
    assert_int_equal(qxs_legacy_snapshot_read(tu_tmpfile("absent.bin"), d, &gi, &gx, &gn, &lsn), QX_ENOTFOUND);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_basics),
        cmocka_unit_test(test_pidmap_vs_reference),
        cmocka_unit_test(test_segment_roundtrip_and_corruption),
        cmocka_unit_test(test_manifest_every_byte),
        cmocka_unit_test(test_manifest_v1_read),
        cmocka_unit_test(test_store_codes_files),
        cmocka_unit_test(test_store_across_checkpoints),
        cmocka_unit_test(test_store_merge_preserves_live),
        cmocka_unit_test(test_store_refuses_bad_segment),
        cmocka_unit_test(test_wal_roundtrip),
        cmocka_unit_test(test_wal_torn_every_byte),
        cmocka_unit_test(test_wal_corruption_before_tail),
        cmocka_unit_test(test_wal_parse_garbage),
        cmocka_unit_test(test_wal_group_commit),
        cmocka_unit_test(test_legacy_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
