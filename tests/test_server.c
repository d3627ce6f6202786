/* tests/test_server.c — unit tests of the server's pure parts: the
 * write-ahead log (round trip, torn tails at every byte, corrupt CRC, group
 * commit), the raw vector store (upsert/overwrite/delete with swap, exact
 * top-k against a brute-force reference, snapshot round trip and corruption),
 * routing and the name/id rules that keep paths inside the data directory,
 * and the fast search-body parser (what it accepts, what it declines, and its
 * numbers bit-identical to strtod).
 * The server sources are compiled in directly: the test binaries link only
 * the core library, and these files need nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "../server/pointid.c"
#include "../server/route.c"
#include "../server/search_body.c"
#include "../server/store.c"
#include "../server/wal.c"

/* ---- WAL ---------------------------------------------------------------- */

typedef struct seen {
    int nrec;
    uint64_t lsn[64];
    uint32_t n[64];
    int64_t first_id[64];
    float first_val[64];
} seen;

static int on_rec(void *ctx, const qxs_wal_rec *r) {
    seen *s = ctx;
    if (s->nrec < 64) {
        s->lsn[s->nrec] = r->lsn;
        s->n[s->nrec] = r->n;
        memcpy(&s->first_id[s->nrec], r->ids, 8);
        if (r->vecs) memcpy(&s->first_val[s->nrec], r->vecs, 4);
    }
    s->nrec++;
    return 0;
}

static void write_log(const char *path, int nrec, size_t d) {
    qxs_wal w;
    unlink(path);
    assert_int_equal(qxs_wal_open(&w, path, d, NULL, NULL, NULL), 0);
    for (int r = 0; r < nrec; r++) {
        int64_t ids[3] = {r * 10, r * 10 + 1, r * 10 + 2};
        float x[3 * 8];
        for (int i = 0; i < 3 * 8; i++) x[i] = (float)(r + i);
        if (r % 3 == 2) assert_int_equal(qxs_wal_append(&w, QXS_WAL_DELETE, (uint64_t)r + 1, ids, NULL, 2, d), 0);
        else assert_int_equal(qxs_wal_append(&w, QXS_WAL_UPSERT, (uint64_t)r + 1, ids, x, 3, d), 0);
        assert_int_equal(qxs_wal_sync(&w, (uint64_t)r + 1), 0);
    }
    qxs_wal_close(&w);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static void test_wal_roundtrip(void **state) {
    (void)state;
    const char *p = tu_tmpfile("wal_rt.log");
    write_log(p, 7, 8);
    seen s = {0};
    qxs_wal w;
    uint64_t dropped = 99;
    assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &dropped), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(s.nrec, 7);
    for (int r = 0; r < 7; r++) {
        assert_int_equal(s.lsn[r], r + 1);
        assert_int_equal(s.n[r], r % 3 == 2 ? 2 : 3);
        assert_int_equal(s.first_id[r], r * 10);
        if (r % 3 != 2) assert_true(s.first_val[r] == (float)r);
    }
    qxs_wal_close(&w);
}

/* Cut the log at every byte: replay must yield exactly the records wholly
 * before the cut, report the rest as dropped, and truncate the file there. */
static void test_wal_torn_every_byte(void **state) {
    (void)state;
    const char *full = tu_tmpfile("wal_full.log");
    write_log(full, 4, 8);
    long size = file_size(full);
    assert_true(size > 0);
    size_t usz = size > 0 ? (size_t)size : 1;
    uint8_t *buf = malloc(usz);
    FILE *f = fopen(full, "rb");
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    /* record boundaries */
    long bounds[8];
    int nb = 0;
    for (long off = 0; off < size;) {
        uint32_t len;
        memcpy(&len, buf + off, 4);
        off += 8 + len;
        bounds[nb++] = off;
    }
    assert_int_equal(nb, 4);
    const char *p = tu_tmpfile("wal_cut.log");
    for (long cut = 0; cut <= size; cut++) {
        f = fopen(p, "wb");
        fwrite(buf, 1, (size_t)cut, f);
        fclose(f);
        int whole = 0;
        while (whole < nb && bounds[whole] <= cut) whole++;
        seen s = {0};
        qxs_wal w;
        uint64_t dropped;
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &dropped), 0);
        assert_int_equal(s.nrec, whole);
        long good = whole ? bounds[whole - 1] : 0;
        assert_int_equal((long)dropped, cut - good);
        assert_int_equal(file_size(p), good);
        /* an append after recovery follows the good prefix */
        int64_t id = 4242;
        float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(qxs_wal_append(&w, QXS_WAL_UPSERT, 100, &id, x, 1, 8), 0);
        qxs_wal_close(&w);
        seen s2 = {0};
        assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s2, &dropped), 0);
        assert_int_equal(s2.nrec, whole + 1);
        assert_int_equal(s2.first_id[whole], 4242);
        assert_int_equal(dropped, 0);
        qxs_wal_close(&w);
    }
    free(buf);
}

static void test_wal_bad_crc_and_garbage(void **state) {
    (void)state;
    const char *p = tu_tmpfile("wal_crc.log");
    write_log(p, 3, 8);
    long size = file_size(p);
    /* flip one payload byte of the second record */
    FILE *f = fopen(p, "r+b");
    uint32_t len;
    assert_int_equal(fread(&len, 4, 1, f), 1);
    long second = 8 + (long)len;
    fseek(f, second + 8 + 5, SEEK_SET);
    int c = fgetc(f);
    fseek(f, second + 8 + 5, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    seen s = {0};
    qxs_wal w;
    uint64_t dropped;
    assert_int_equal(qxs_wal_open(&w, p, 8, on_rec, &s, &dropped), 0);
    assert_int_equal(s.nrec, 1);
    assert_int_equal((long)dropped, size - second);
    qxs_wal_close(&w);
    /* parse never reads past the buffer: random garbage of every length */
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
        size_t good = qxs_wal_parse(g, n, 8, NULL, NULL, &e);
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
        int64_t id = i;
        float x[4] = {0};
        pthread_mutex_lock(a->mu);
        uint64_t l = ++*a->lsn;
        assert_int_equal(qxs_wal_append(a->w, QXS_WAL_UPSERT, l, &id, x, 1, 4), 0);
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
    /* reset empties the log */
    assert_int_equal(qxs_wal_reset(&w, p), 0);
    assert_int_equal(file_size(p), 0);
    qxs_wal_close(&w);
}

/* ---- store ---------------------------------------------------------------- */

static void test_store_ops_and_search(void **state) {
    (void)state;
    const size_t n = 2000, d = 24, k = 10, nq = 20;
    float *x = tu_clustered(n, d, 10, 11), *q = tu_clustered(nq, d, 10, 12);
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(i * 7 + 3);
    qxs_store s;
    qxs_store_init(&s, d);
    assert_int_equal(qxs_store_upsert(&s, ids, x, n), 0);
    assert_int_equal(s.n, n);
    /* delete every third id: swap-with-last keeps the map consistent */
    for (size_t i = 0; i < n; i += 3) qxs_store_delete(&s, &ids[i], 1, NULL);
    size_t removed = 99;
    qxs_store_delete(&s, &ids[0], 1, &removed);
    assert_int_equal(removed, 0);
    for (size_t i = 0; i < n; i++) {
        const float *v = qxs_store_get(&s, ids[i]);
        if (i % 3 == 0) assert_null(v);
        else {
            assert_non_null(v);
            assert_memory_equal(v, x + i * d, d * sizeof(float));
        }
    }
    /* exact top-k equals brute force over the survivors */
    float *dist = malloc(k * sizeof *dist);
    int64_t *res = malloc(k * sizeof *res);
    for (size_t qi = 0; qi < nq; qi++) {
        size_t found;
        assert_int_equal(qxs_store_search(&s, q + qi * d, k, 0, dist, res, &found), 0);
        assert_int_equal(found, k);
        /* reference: selection over all survivors */
        float best[10];
        int64_t bid[10];
        for (size_t j = 0; j < k; j++) best[j] = INFINITY, bid[j] = -1;
        for (size_t i = 0; i < n; i++) {
            if (i % 3 == 0) continue;
            float dd = 0;
            for (size_t t = 0; t < d; t++) {
                float e = q[qi * d + t] - x[i * d + t];
                dd += e * e;
            }
            if (dd < best[k - 1]) {
                size_t p = k - 1;
                while (p > 0 && best[p - 1] > dd) best[p] = best[p - 1], bid[p] = bid[p - 1], p--;
                best[p] = dd;
                bid[p] = ids[i];
            }
        }
        for (size_t j = 0; j < k; j++) {
            assert_true(fabsf(dist[j] - best[j]) <= 1e-3f * (1 + best[j]));
            if (j > 0) assert_true(dist[j] >= dist[j - 1]);
        }
        assert_int_equal(res[0], bid[0]);
    }
    /* fewer points than k: padded with -1 */
    qxs_store small;
    qxs_store_init(&small, d);
    assert_int_equal(qxs_store_upsert(&small, ids, x, 3), 0);
    size_t found;
    qxs_store_search(&small, q, k, 1, dist, res, &found);
    assert_int_equal(found, 3);
    assert_int_equal(res[3], -1);
    assert_true(isinf(dist[9]));
    qxs_store_free(&small);
    free(dist);
    free(res);
    free(ids);
    free(x);
    free(q);
    qxs_store_free(&s);
}

static void test_store_snapshot(void **state) {
    (void)state;
    const size_t n = 500, d = 16;
    float *x = tu_clustered(n, d, 5, 3);
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i * 1000003;
    qxs_store s, t;
    qxs_store_init(&s, d);
    assert_int_equal(qxs_store_upsert(&s, ids, x, n), 0);
    const char *p = tu_tmpfile("snap.bin");
    assert_int_equal(qxs_store_save(&s, 77, p), 0);
    qxs_store_init(&t, d);
    uint64_t lsn = 0;
    assert_int_equal(qxs_store_load(&t, p, &lsn), 0);
    assert_int_equal(lsn, 77);
    assert_int_equal(t.n, n);
    for (size_t i = 0; i < n; i++) assert_memory_equal(qxs_store_get(&t, ids[i]), x + i * d, d * 4);
    qxs_store_free(&t);
    /* wrong dimension, flipped byte, truncation: all rejected */
    qxs_store_init(&t, d + 1);
    assert_int_equal(qxs_store_load(&t, p, &lsn), QX_EFORMAT);
    qxs_store_free(&t);
    long size = file_size(p);
    for (long off = 8; off < size; off += 997) {
        assert_int_equal(qxs_store_save(&s, 77, p), 0);
        FILE *f = fopen(p, "r+b");
        fseek(f, off, SEEK_SET);
        int c = fgetc(f);
        fseek(f, off, SEEK_SET);
        fputc(c ^ 1, f);
        fclose(f);
        qxs_store_init(&t, d);
        assert_int_equal(qxs_store_load(&t, p, &lsn), QX_EFORMAT);
        qxs_store_free(&t);
    }
    assert_int_equal(qxs_store_save(&s, 77, p), 0);
    assert_int_equal(truncate(p, size - 1), 0);
    qxs_store_init(&t, d);
    assert_int_equal(qxs_store_load(&t, p, &lsn), QX_EFORMAT);
    qxs_store_free(&t);
    qxs_store_init(&t, d);
    assert_int_equal(qxs_store_load(&t, tu_tmpfile("absent.bin"), &lsn), QX_ENOTFOUND);
    qxs_store_free(&t);
    qxs_store_free(&s);
    free(ids);
    free(x);
}

/* ---- routing and names -------------------------------------------------------- */

static void test_names_and_ids(void **state) {
    (void)state;
    assert_true(qxs_name_valid("abc_DEF-09", 10));
    assert_true(qxs_name_valid("a", 1));
    char n64[65];
    memset(n64, 'x', 64);
    n64[64] = 0;
    assert_true(qxs_name_valid(n64, 64));
    assert_false(qxs_name_valid(n64, 65 > 64 ? 65 : 0));
    const char *bad[] = {"", ".", "..", "a/b", "a.b", "a b", "%2e", "a\\b", "é", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(qxs_name_valid(bad[i], strlen(bad[i])));
    int64_t id;
    assert_true(qxs_parse_id("0", 1, &id) && id == 0);
    assert_true(qxs_parse_id("9223372036854775807", 19, &id) && id == INT64_MAX);
    assert_false(qxs_parse_id("9223372036854775808", 19, &id));
    assert_false(qxs_parse_id("-1", 2, &id));
    assert_false(qxs_parse_id("+1", 2, &id));
    assert_false(qxs_parse_id("1a", 2, &id));
    assert_false(qxs_parse_id("", 0, &id));
    assert_false(qxs_parse_id("12345678901234567890", 20, &id));
}

static void test_routes(void **state) {
    (void)state;
    struct {
        const char *path;
        qxs_ep ep;
        int name_ok;
    } cases[] = {
        {"/healthz", QXS_EP_HEALTHZ, 0},
        {"/readyz", QXS_EP_READYZ, 0},
        {"/metrics", QXS_EP_METRICS, 0},
        {"/collections", QXS_EP_COLLECTIONS, 0},
        {"/collections/", QXS_EP_COLLECTIONS, 0},
        {"/collections/abc", QXS_EP_COLLECTION, 1},
        {"/collections/abc/points", QXS_EP_POINTS, 1},
        {"/collections/abc/points/42", QXS_EP_POINT, 1},
        {"/collections/abc/points/delete", QXS_EP_DELETE, 1},
        {"/collections/abc/points/search", QXS_EP_SEARCH, 1},
        {"/collections/abc/points/search/batch", QXS_EP_SEARCH_BATCH, 1},
        {"/collections/abc/rebuild", QXS_EP_REBUILD, 1},
        {"/collections/abc/rebuild/7", QXS_EP_REBUILD_JOB, 1},
        {"/collections/..", QXS_EP_COLLECTION, 0},
        {"/collections/../etc/passwd", QXS_EP_NONE, 0},
        {"/collections//points", QXS_EP_NONE, 0},
        {"collections", QXS_EP_NONE, 0},
        {"", QXS_EP_NONE, 0},
        {"/", QXS_EP_ROOT, 0},
        {"/collections/a/b/c/d/e/f/g", QXS_EP_NONE, 0},
        {"/collections/a/points/search/batch/x", QXS_EP_NONE, 0},
        {"/metrics/x", QXS_EP_NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qxs_route r;
        qxs_route_parse(cases[i].path, &r);
        if (r.ep != cases[i].ep) fail_msg("%s: ep %d, want %d", cases[i].path, r.ep, cases[i].ep);
        if (cases[i].ep > QXS_EP_COLLECTIONS) assert_int_equal(r.name_ok, cases[i].name_ok);
    }
    qxs_route r;
    qxs_route_parse("/collections/abc/points/42", &r);
    assert_true(r.id_ok);
    assert_int_equal(r.pid.kind, QXS_PID_U64);
    assert_int_equal(r.pid.lo, 42);
    qxs_route_parse("/collections/abc/points/x1", &r);
    assert_false(r.id_ok);
    qxs_route_parse("/collections/abc/points/550E8400-e29b-41d4-a716-446655440000", &r);
    assert_true(r.id_ok);
    assert_int_equal(r.pid.kind, QXS_PID_UUID);
    qxs_route_parse("/collections/abc/points/query/batch", &r);
    assert_int_equal(r.ep, QXS_EP_QUERY_BATCH);
    qxs_route_parse("/collections/abc/index/meta.lang", &r);
    assert_int_equal(r.ep, QXS_EP_INDEX_FIELD);
    assert_string_equal(r.field, "meta.lang");
    const char *allow;
    assert_true(qxs_route_allows(QXS_EP_COLLECTION, "PUT", &allow));
    assert_true(qxs_route_allows(QXS_EP_COLLECTION, "HEAD", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "POST", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "PU", &allow));
    assert_false(qxs_route_allows(QXS_EP_COLLECTION, "", &allow));
    assert_false(qxs_route_allows(QXS_EP_SEARCH, "GET", &allow));
    assert_string_equal(allow, "POST");
    assert_false(qxs_route_allows(QXS_EP_NONE, "GET", &allow));
}

/* ---- search body fast path ---------------------------------------------- */

static int parse_sb(const char *body, size_t d, float *v, qxs_search_body *b) {
    return qxs_search_body_parse(body, strlen(body), d, 10000, 65536, v, b);
}

static void test_search_body_accepts(void **state) {
    (void)state;
    float v[3];
    qxs_search_body b;
    assert_int_equal(parse_sb("{\"vector\":[1,-2.5,3e2]}", 3, v, &b), 1);
    assert_true(v[0] == 1.0f && v[1] == -2.5f && v[2] == 300.0f);
    assert_true(b.limit == -1 && b.nprobe == -1 && b.rerank == -1 && b.exact == -1 && b.with_vector == -1);
    assert_int_equal(parse_sb(" {\r\n \"limit\" : 7 , \"vector\" : [ 0.1 , 0 , -0 ] ,"
                              "\"params\":{\"nprobe\":16,\"rerank\":0,\"exact\":false},"
                              "\"with_vector\":true}\n", 3, v, &b), 1);
    assert_true(b.limit == 7 && b.nprobe == 16 && b.rerank == 0 && b.exact == 0 && b.with_vector == 1);
    assert_true(v[0] == (float)0.1 && v[1] == 0.0f && !signbit(v[2])); /* "-0" is the integer 0 */
    assert_int_equal(parse_sb("{\"top\":3,\"params\":{},\"vector\":[1,2,3]}", 3, v, &b), 1);
    assert_int_equal(b.limit, 3);
}

static void test_search_body_declines(void **state) {
    (void)state;
    static const char *bodies[] = {
        "", "{}", "[]", "{\"vector\":[1,2]}", "{\"vector\":[1,2,3,4]}", "{\"vector\":[]}",
        "{\"vector\":[1,2,3]", "{\"vector\":[1,2,3]} x", "{\"vector\":[1,2,3],}", "{\"vector\":[1,,3]}",
        "{\"vector\":[1,2,3],\"vector\":[1,2,3]}", "{\"vector\":[1,2,3],\"limit\":1,\"top\":2}",
        "{\"vector\":[1,2,3],\"limit\":0}", "{\"vector\":[1,2,3],\"limit\":10001}",
        "{\"vector\":[1,2,3],\"limit\":2.0}", "{\"vector\":[1,2,3],\"limit\":null}",
        "{\"vector\":[1,2,3],\"limit\":\"5\"}", "{\"vector\":[1,2,3],\"params\":{\"nprobe\":0}}",
        "{\"vector\":[1,2,3],\"params\":{\"rerank\":-1}}", "{\"vector\":[1,2,3],\"params\":{\"hnsw_ef\":8}}",
        "{\"vector\":[1,2,3],\"params\":null}", "{\"vector\":[1,2,3],\"with_vector\":1}",
        "{\"vector\":[1,2,3],\"with_payload\":true}", "{\"vect\\u006fr\":[1,2,3]}",
        "{\"vector\":[1,2,1e39]}", "{\"vector\":[1,2,1e400]}", "{\"vector\":[1,2,1e-400]}",
        "{\"vector\":[1,2,NaN]}", "{\"vector\":[1,2,01]}", "{\"vector\":[1,2,1.]}", "{\"vector\":[1,2,.5]}",
        "{\"vector\":[1,2,+1]}", "{\"vector\":[1,2,1e]}", "{\"vector\":[1,2,1234567890123456]}",
        "{\"vector\":[1,2,\"3\"]}", "{\"vector\":[1,2,true]}", "{\"vector\":[1,2,3],\"exact\":true}",
        "{\"vector\":[1,2,3],\"params\":{\"exact\":tru}}"
    };
    float v[3];
    qxs_search_body b;
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
        if (parse_sb(bodies[i], 3, v, &b)) fail_msg("accepted: %s", bodies[i]);
    /* NUL bytes inside the body, given by length */
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,2,3]}\0", 19, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,\0 2,3]}", 20, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(qxs_search_body_parse("{\"vector\":[1,2,3]\0}", 19, 3, 10000, 65536, v, &b), 0);
    /* truncations of a valid body never parse */
    const char *ok = "{\"vector\":[1.5,2,3],\"limit\":5,\"params\":{\"nprobe\":4}}";
    for (size_t n = 0; n < strlen(ok); n++)
        assert_int_equal(qxs_search_body_parse(ok, n, 3, 10000, 65536, v, &b), 0);
    assert_int_equal(parse_sb(ok, 3, v, &b), 1);
}

/* exact_decimal (Clinger's fast path) against strtod, bit for bit. */
static void test_search_body_numbers(void **state) {
    (void)state;
    uint64_t r = 12345;
    size_t fast = 0;
    for (int t = 0; t < 200000; t++) {
        char buf[64];
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int idig = (int)(r >> 60) % 8, fdig = (int)(r >> 56 & 15) + 1, ex = (int)(r >> 40 & 63) - 32;
        size_t n = 0;
        if (r >> 39 & 1) buf[n++] = '-';
        uint64_t x = r ^ (r >> 29);
        if (idig == 0) buf[n++] = '0';
        for (int i = 0; i < idig; i++, x /= 10) buf[n++] = (char)('0' + (i == 0 ? 1 + x % 9 : x % 10));
        buf[n++] = '.';
        for (int i = 0; i < fdig; i++, x /= 7) buf[n++] = (char)('0' + x % 10);
        if (r >> 38 & 1) n += (size_t)snprintf(buf + n, sizeof buf - n, "e%d", ex);
        buf[n] = 0;
        double want = strtod(buf, NULL), got;
        if (exact_decimal(buf, buf + n, &got)) {
            fast++;
            if (memcmp(&got, &want, sizeof got)) fail_msg("%s: %.17g, strtod %.17g", buf, got, want);
        }
    }
    assert_true(fast > 100000); /* the fast path takes most of these */
}

/* Whole bodies {"vector":[x]} with x in every JSON number shape (integer or
 * not, fraction with leading zeros, exponent e/E/+/-, up to 20 digits a
 * part): accepted exactly when the jansson path would accept the number and
 * this parser promises to (not ERANGE, integers up to 15 digits, a finite
 * 32-bit float, a token under 64 bytes), and then bit-identical to it. */
static void test_search_body_number_shapes(void **state) {
    (void)state;
    uint64_t r = 99;
    size_t accepted = 0;
    for (int t = 0; t < 100000; t++) {
        char tok[96], body[128];
        size_t n = 0, idig;
#define RND() (r = r * 6364136223846793005ULL + 1442695040888963407ULL, r >> 33)
        if (RND() % 3 == 0) tok[n++] = '-';
        idig = RND() % 21;
        if (idig == 0) tok[n++] = '0';
        for (size_t i = 0; i < idig; i++) tok[n++] = (char)('0' + (i == 0 ? 1 + RND() % 9 : RND() % 10));
        int integer = 1;
        if (RND() % 2) {
            integer = 0;
            tok[n++] = '.';
            size_t zeros = RND() % 4 == 0 ? RND() % 8 : 0, fd = 1 + RND() % 20;
            for (size_t i = 0; i < zeros; i++) tok[n++] = '0';
            for (size_t i = 0; i < fd; i++) tok[n++] = (char)('0' + RND() % 10);
        }
        if (RND() % 2) {
            integer = 0;
            tok[n++] = RND() % 2 ? 'e' : 'E';
            unsigned sg = (unsigned)(RND() % 3);
            if (sg) tok[n++] = sg == 1 ? '+' : '-';
            unsigned emax = RND() % 2 ? 40 : 400;
            n += (size_t)snprintf(tok + n, sizeof tok - n, "%u", (unsigned)(RND() % emax));
        }
        tok[n] = 0;
#undef RND
        errno = 0;
        double want = integer ? (double)strtoll(tok, NULL, 10) : strtod(tok, NULL);
        int erange = errno == ERANGE;
        size_t digits = n - (tok[0] == '-');
        int expect = !erange && !(integer && digits > 15) && fabs(want) <= FLT_MAX && n <= 63;
        snprintf(body, sizeof body, "{\"vector\":[%s]}", tok);
        float v;
        qxs_search_body b;
        int got = parse_sb(body, 1, &v, &b);
        if (got != expect) fail_msg("%s: parser %s, expected %s", tok, got ? "accepts" : "declines", expect ? "accept" : "decline");
        float w = (float)want;
        if (got && memcmp(&v, &w, sizeof v)) fail_msg("%s: %.9g, jansson path %.9g", tok, v, w);
        accepted += (size_t)got;
    }
    assert_true(accepted > 50000);
    float v;
    qxs_search_body b;
    assert_int_equal(parse_sb("{\"vector\":[-0.0]}", 1, &v, &b), 1);
    assert_true(v == 0.0f && signbit(v)); /* a real -0.0 keeps its sign, as strtod's */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_roundtrip),
        cmocka_unit_test(test_wal_torn_every_byte),
        cmocka_unit_test(test_wal_bad_crc_and_garbage),
        cmocka_unit_test(test_wal_group_commit),
        cmocka_unit_test(test_store_ops_and_search),
        cmocka_unit_test(test_store_snapshot),
        cmocka_unit_test(test_names_and_ids),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_search_body_accepts),
        cmocka_unit_test(test_search_body_declines),
        cmocka_unit_test(test_search_body_numbers),
        cmocka_unit_test(test_search_body_number_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
