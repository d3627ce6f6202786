/* tests/test_fastscan.c — the fast-scan kernels, quantizer and IVF index.
 *
 * - every SIMD scan kernel equals the scalar reference bit for bit, for every
 *   n = 0..70 (partial last blocks) and pair counts 1..61 (odd and even);
 *   find_lt_u16 and decode_l2 likewise for every length 0..130;
 * - the 8-bit table bound: scanned sums are within nsteps × 0.5 / scale of
 *   the float sums;
 * - the quantizer: codes round-trip through its blob, its byte-level
 *   additive codebooks reproduce decode(), training lowers the error with
 *   more steps, bad blobs are rejected;
 * - the IVF index: with every list probed and a shortlist covering the base,
 *   search equals brute force over its own decoded codes (the quantized
 *   first stage only selects); save/load/search identical; upsert/remove
 *   keep the blocks consistent; recall of the cascade against brute force
 *   on synthetic data and on siftsmall. Levels the CPU lacks are skipped and
 *   named on stderr;
 * - the two-level coarse quantizer: dot16t kernels = scalar for d 1..130;
 *   with every group kept it selects exactly the flat top-nprobe lists;
 *   the default keeps the recall near the flat selection's; it survives
 *   save/load (derived from the centroids alone);
 * - filtered search: only passing ids, recall against brute force over the
 *   passing ids, more lists visited when few pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ivf_impl.h"
#include "kernels_fs.h"
#include "qinx/alloc.h"
#include "qinx/error.h"
#include "qinx/fastscan.h"
#include "qinx/ivf.h"
#include "qinx/kmeans.h"
#include "qinx/vecfile.h"

static const qx_simd_level LEVELS[] = {QX_SIMD_AVX2, QX_SIMD_AVX512};

static uint8_t *rand_bytes(size_t n, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(tu_rng_next(&r) >> 56);
    return b;
}

static void test_scan_kernels_match_scalar(void **state) {
    (void)state;
    static const size_t pairs[] = {1, 2, 3, 4, 5, 8, 9, 16, 17, 33, 61};
    for (size_t li = 0; li < 2; li++) {
        const qx__fs_kernels *k = qx__fs_kernels_for(LEVELS[li]);
        if (!k) {
            fprintf(stderr, "fast-scan %s: CPU lacks it, skipped\n", qx_simd_name(LEVELS[li]));
            continue;
        }
        size_t checked = 0;
        for (size_t pi = 0; pi < sizeof pairs / sizeof *pairs; pi++) {
            size_t P = pairs[pi];
            uint8_t *lut = rand_bytes(2 * P * 16, 7 + P);
            for (size_t n = 0; n <= 70; n++) {
                size_t nb = qx__fs_nblocks(n);
                uint8_t *blocks = rand_bytes(nb * QX_FS_BLOCK * P, 100 * P + n);
                uint16_t *want = calloc(nb * QX_FS_BLOCK + 1, 2), *got = calloc(nb * QX_FS_BLOCK + 1, 2);
                got[nb * QX_FS_BLOCK] = 0xBEEF; /* guard: nothing written past the blocks */
                qx__fs_scan_scalar(want, blocks, nb, P, lut);
                k->scan(got, blocks, nb, P, lut);
                assert_int_equal(got[nb * QX_FS_BLOCK], 0xBEEF);
                if (nb && memcmp(want, got, nb * QX_FS_BLOCK * 2) != 0) {
                    fprintf(stderr, "%s scan differs: P=%zu n=%zu\n", k->name, P, n);
                    fail();
                }
                checked++;
                free(blocks);
                free(want);
                free(got);
            }
            free(lut);
        }
        /* the extreme table: every entry 255 at the largest pair count */
        size_t P = QX_FS_MAX_PAIRS - 1;
        uint8_t *lut = malloc(2 * P * 16), *blocks = rand_bytes(QX_FS_BLOCK * P, 5);
        memset(lut, 255, 2 * P * 16);
        uint16_t want[QX_FS_BLOCK], got[QX_FS_BLOCK];
        qx__fs_scan_scalar(want, blocks, 1, P, lut);
        k->scan(got, blocks, 1, P, lut);
        assert_memory_equal(want, got, sizeof want);
        assert_int_equal(want[0], 2 * P * 255);
        free(lut);
        free(blocks);
        fprintf(stderr, "fast-scan %s: scan equals scalar on %zu (P, n) cases\n", k->name, checked);
    }
}

static void test_find_lt_and_decode_l2(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 99);
    for (size_t li = 0; li < 2; li++) {
        const qx__fs_kernels *k = qx__fs_kernels_for(LEVELS[li]);
        if (!k) continue;
        uint16_t v[131];
        for (size_t n = 0; n <= 130; n++) {
            for (size_t i = 0; i < n; i++) v[i] = (uint16_t)(1000 + (tu_rng_next(&r) >> 52));
            static const uint16_t thrs[] = {0, 1, 1000, 1500, 3000, 6000, 65535};
            for (size_t t = 0; t < sizeof thrs / sizeof *thrs; t++) {
                /* search from every start so each position is found */
                for (size_t s = 0; s <= n; s++)
                    assert_int_equal(k->find_lt_u16(v + s, n - s, thrs[t]),
                                     qx__fs_find_lt_u16_scalar(v + s, n - s, thrs[t]));
            }
        }
        float q[130], base[130], rowsm[5][130];
        const float *rows[5] = {rowsm[0], rowsm[1], rowsm[2], rowsm[3], rowsm[4]};
        for (size_t d = 1; d <= 130; d++) {
            for (size_t j = 0; j < d; j++) {
                q[j] = (float)tu_rng_normal(&r);
                base[j] = (float)tu_rng_normal(&r);
                for (int m = 0; m < 5; m++) rowsm[m][j] = (float)tu_rng_normal(&r) * 0.3f;
            }
            for (size_t nr = 0; nr <= 5; nr++) {
                float want = qx__fs_decode_l2_scalar(q, base, rows, nr, d);
                float got = k->decode_l2(q, base, rows, nr, d);
                assert_true(fabsf(want - got) <= 1e-5f * (1.0f + want));
            }
        }
    }
}

static void test_dot16t_matches_scalar(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    float q[130], blk[130 * 16], want[16], got[16];
    for (size_t li = 0; li < 2; li++) {
        const qx__fs_kernels *k = qx__fs_kernels_for(LEVELS[li]);
        if (!k) continue;
        for (size_t d = 1; d <= 130; d++) {
            for (size_t t = 0; t < d; t++) q[t] = (float)tu_rng_normal(&r);
            for (size_t t = 0; t < d * 16; t++) blk[t] = (float)tu_rng_normal(&r);
            qx__fs_dot16t_scalar(want, q, blk, d);
            k->dot16t(got, q, blk, d);
            for (int j = 0; j < 16; j++) {
                double scale = 0; /* the rounding error bound of a d-term sum */
                for (size_t t = 0; t < d; t++) scale += fabs(q[t] * blk[t * 16 + j]);
                assert_true(fabs(want[j] - got[j]) <= 1e-5 * (1.0 + scale));
            }
        }
    }
}

/* quantize_lut of each SIMD level against the scalar reference: the same
 * scale and bias, entries within one unit (decision 2 of kernels_fs.h's
 * table: a fused multiply-add may round a boundary value the other way);
 * product_base exactly, on uneven step boundaries. */
static void test_lut_and_product_kernels_match_scalar(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 19);
    enum { NS = 2 * QX_FS_MAX_PAIRS, DM = 131 };
    float *T = malloc(sizeof(float) * NS * 16), *pack = malloc(sizeof(float) * (16 * DM + 16));
    float want[DM + 16], got[DM + 16], cen[DM], qv[DM];
    float *ybuf = qx_aligned_alloc(sizeof(float) * (DM + 16));
    uint8_t a8[NS * 16], b8[NS * 16], nib[64];
    uint32_t sub[DM + 1];
    for (size_t li = 0; li < 2; li++) {
        const qx__fs_kernels *k = qx__fs_kernels_for(LEVELS[li]);
        if (!k) continue;
        for (size_t ns = 1; ns <= NS; ns += 7) {
            for (size_t i = 0; i < ns * 16; i++) T[i] = (float)tu_rng_normal(&r) * (i % 3 ? 1.0f : 4.0f);
            float bw, bg, sw = qx__fs_quantize_lut(T, ns, a8, &bw), sg = k->quantize_lut(T, ns, b8, &bg);
            assert_true(sw == sg && bw == bg);
            for (size_t i = 0; i < ns * 16; i++) assert_true(abs((int)a8[i] - (int)b8[i]) <= 1);
        }
        for (size_t d = 2; d <= DM; d += 3)
            for (size_t M4 = 2; M4 <= d && M4 <= 64; M4 += 6) {
                for (size_t m = 0; m <= M4; m++) {
                    size_t lo, hi;
                    qx_fs_subspace(d, M4, m < M4 ? m : M4 - 1, &lo, &hi);
                    sub[m] = (uint32_t)(m < M4 ? lo : hi);
                }
                for (size_t t = 0; t < 16 * d; t++) pack[t] = (float)tu_rng_normal(&r);
                for (size_t t = 0; t < d; t++) cen[t] = (float)tu_rng_normal(&r), qv[t] = (float)tu_rng_normal(&r);
                for (size_t j = 0; j < M4 / 2; j++) nib[j] = (uint8_t)tu_rng_next(&r);
                memset(want, 0, sizeof want);
                memset(got, 0, sizeof got);
                qx__fs_product_base_scalar(want, pack, nib, sub, M4);
                k->product_base(got, pack, nib, sub, M4);
                assert_memory_equal(want, got, sizeof(float) * d);
                assert_true(want[d - 1] != 0);
                /* product_l2 with 0..3 rows: the same distance as decoding
                 * (base + rows + concatenated codewords) and taking it */
                for (size_t nrows = 0; nrows <= 3; nrows++) {
                    const float *rw[3] = {pack + 3, pack + 5 * d / 4, pack + 2 * d};
                    float ref = 0, mag = 0;
                    for (size_t t = 0; t < d; t++) {
                        float x = cen[t] + want[t];
                        for (size_t j = 0; j < nrows; j++) x += rw[j][t];
                        ref += (qv[t] - x) * (qv[t] - x);
                        mag += qv[t] * qv[t] + x * x;
                    }
                    float a = qx__fs_product_l2_scalar(qv, cen, rw, nrows, d, pack, nib, sub, M4, ybuf);
                    float b = k->product_l2(qv, cen, rw, nrows, d, pack, nib, sub, M4, ybuf);
                    assert_true(fabsf(a - ref) <= 1e-5f * (1 + mag) && fabsf(b - ref) <= 1e-5f * (1 + mag));
                }
            }
    }
    free(T);
    free(pack);
    qx_aligned_free(ybuf);
}

static void test_pack_roundtrip_and_lut_bound(void **state) {
    (void)state;
    size_t P = 9, n = 77;
    uint8_t *codes = rand_bytes(n * P, 3), *blocks = calloc(qx__fs_nblocks(n) * QX_FS_BLOCK * P, 1);
    for (size_t i = 0; i < n; i++) qx__fs_pack_set(blocks, P, i, codes + i * P);
    for (size_t i = 0; i < n; i++) {
        uint8_t back[16];
        qx__fs_pack_get(blocks, P, i, back);
        assert_memory_equal(back, codes + i * P, P);
    }
    /* bound: |bias + acc/scale − Σ T| <= nsteps * 0.5 / scale (+ float slack) */
    tu_rng r;
    tu_rng_seed(&r, 11);
    float T[18 * 16];
    for (size_t i = 0; i < 18 * 16; i++) T[i] = (float)tu_rng_normal(&r) * (i >= 16 * 16 ? 5.0f : 1.0f);
    uint8_t lut8[18 * 16];
    float bsum, scale = qx__fs_quantize_lut(T, 18, lut8, &bsum);
    uint16_t acc[96];
    qx__fs_scan_scalar(acc, blocks, qx__fs_nblocks(n), P, lut8);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double exact = 0;
        for (size_t p = 0; p < P; p++)
            exact += T[(2 * p) * 16 + (codes[i * P + p] & 15)] + T[(2 * p + 1) * 16 + (codes[i * P + p] >> 4)];
        double est = bsum + acc[i] / (double)scale, err = fabs(est - exact);
        if (err > worst) worst = err;
        assert_true(err <= 18 * 0.5 / scale + 1e-4 * (1 + fabs(exact)));
    }
    fprintf(stderr, "8-bit table: worst error %.4g, bound %.4g\n", worst, 18 * 0.5 / scale);
    free(codes);
    free(blocks);
}

/* ---- quantizer ------------------------------------------------------------ */

#define D 24
#define NB 4000
#define NQ 50

static float *g_base, *g_queries;

static int setup(void **state) {
    (void)state;
    g_base = tu_clustered(NB + NQ, D, 40, 17);
    g_queries = g_base + (size_t)NB * D;
    return 0;
}
static int teardown(void **state) {
    (void)state;
    free(g_base);
    return 0;
}

/* The shape of the 4-bit part the helpers build (qx_fs_opts.product4): the
 * test_product_* wrappers run the IVF tests again with 1. */
static int g_product;

static int reset_shape(void **state) {
    (void)state;
    g_product = 0;
    return 0;
}

static qx_quantizer *train_fs(size_t M4, size_t M8) {
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.M4 = M4;
    o.M8 = M8;
    o.product4 = g_product;
    o.kmeans_iters = 10;
    qx_quantizer *q = NULL;
    assert_int_equal(qx_fs_new(&q, D, &o), 0);
    int rc = qx_quantizer_train(q, g_base, NB);
    if (rc) fprintf(stderr, "train: %s\n", qx_last_error());
    assert_int_equal(rc, 0);
    return q;
}

static void test_quantizer_roundtrip(void **state) {
    (void)state;
    qx_quantizer *q = train_fs(8, 2);
    assert_int_equal(qx_quantizer_steps(q), 6);
    assert_int_equal(qx_quantizer_kind(q), QX_QUANT_FASTSCAN);
    assert_string_equal(qx_quantizer_kind_name(QX_QUANT_FASTSCAN), "fastscan");
    size_t M = 6, n = 200;
    uint8_t *c = malloc(n * M), *c2 = malloc(n * M);
    float *dec = malloc(sizeof(float) * n * D), *dec2 = malloc(sizeof(float) * n * D);
    assert_int_equal(qx_quantizer_encode(q, g_base, n, c), 0);
    assert_int_equal(qx_quantizer_decode(q, c, n, 0, dec), 0);
    /* decode = Σ 4-bit codewords + Σ 8-bit codewords */
    const float *A4 = qx_fs_codebooks4(q), *A8 = qx_fs_codebooks8(q);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) {
            double s = 0;
            for (size_t st = 0; st < 8; st++) {
                uint8_t b = c[i * M + st / 2];
                s += A4[(st * 16 + (st % 2 ? b >> 4 : b & 15)) * D + j];
            }
            for (size_t m = 0; m < 2; m++) s += A8[(m * 256 + c[i * M + 4 + m]) * D + j];
            assert_true(fabs(s - dec[i * D + j]) < 1e-4);
        }
    /* blob round trip: same codes, same decoding */
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    qx_quantizer *q2 = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &q2), 0);
    assert_int_equal(qx_quantizer_encode(q2, g_base, n, c2), 0);
    assert_memory_equal(c, c2, n * M);
    assert_int_equal(qx_quantizer_decode(q2, c, n, 0, dec2), 0);
    assert_memory_equal(dec, dec2, sizeof(float) * n * D);
    /* corrupt blobs: truncated, a flipped length, a NaN codeword */
    qx_quantizer *bad = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len - 3, &bad), QX_EFORMAT);
    uint8_t *b2 = malloc(len);
    memcpy(b2, blob, len);
    b2[20 + 8] = 99; /* M8 field: no longer M4/2 + M8 = M */
    assert_int_equal(qx_quantizer_deserialize(b2, len, &bad), QX_EFORMAT);
    memcpy(b2, blob, len);
    float nan = NAN;
    memcpy(b2 + 20 + 40, &nan, 4);
    assert_int_equal(qx_quantizer_deserialize(b2, len, &bad), QX_EFORMAT);
    /* MSE falls with steps: 4-bit part alone, then with the 8-bit steps */
    double mse4, mse_all;
    assert_int_equal(qx_quantizer_mse(q, g_base, 1000, 4, &mse4), 0);
    assert_int_equal(qx_quantizer_mse(q, g_base, 1000, 0, &mse_all), 0);
    fprintf(stderr, "fastscan 8x4-bit + 2x8-bit: MSE %.4g (4-bit part %.4g)\n", mse_all, mse4);
    assert_true(mse_all < mse4);
    free(b2);
    qx_free(blob);
    qx_quantizer_free(q2);
    qx_quantizer_free(q);
    free(c);
    free(c2);
    free(dec);
    free(dec2);
}

static void test_bad_options(void **state) {
    (void)state;
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    qx_quantizer *q = NULL;
    o.M4 = 7;
    assert_int_equal(qx_fs_new(&q, D, &o), QX_EINVAL);
    o.M4 = 16;
    o.M8 = 60;
    assert_int_equal(qx_fs_new(&q, D, &o), QX_EINVAL);
    o.M8 = 0;
    assert_int_equal(qx_fs_new(&q, 0, &o), QX_EDIM);
    assert_null(q);
    assert_int_equal(qx_fs_new(&q, D, &o), 0); /* no 8-bit part is allowed */
    qx_quantizer_free(q);
}

/* ---- IVF ---------------------------------------------------------------- */

static qx_ivf *build_ivf_on(const float *base, size_t nb, size_t M4, size_t M8, size_t nlist,
                            qx_metric metric) {
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.M4 = M4;
    o.M8 = M8;
    o.product4 = g_product;
    o.kmeans_iters = 10;
    o.beam = o.train_beam = 1; /* the 8-bit RQ's beam: keeps the test fast */
    qx_quantizer *q = NULL;
    assert_int_equal(qx_fs_new(&q, D, &o), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = nlist;
    io.metric = metric;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, D, q, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, base, nb), 0);
    int64_t *ids = malloc(sizeof(int64_t) * nb);
    for (size_t i = 0; i < nb; i++) ids[i] = (int64_t)i * 3 + 1;
    assert_int_equal(qx_ivf_add(ivf, base, ids, nb), 0);
    free(ids);
    assert_int_equal(qx_ivf_check(ivf), 0);
    return ivf;
}

static qx_ivf *build_ivf(size_t M4, size_t M8, size_t nlist, qx_metric metric) {
    return build_ivf_on(g_base, NB, M4, M8, nlist, metric);
}

static int fs_search(const qx_ivf *ivf, size_t k, size_t nprobe, size_t shortlist, int threads,
                     const float *q, size_t nq, float *dist, int64_t *ids) {
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = nprobe;
    p.shortlist = shortlist;
    p.threads = threads;
    int rc = qx_ivf_search(ivf, NULL, q, nq, k, &p, dist, ids);
    if (rc) fprintf(stderr, "search: %s\n", qx_last_error());
    return rc;
}

/* Reconstruction of every base vector as the index stores it: nearest
 * centroid + decode(encode(residual)) (encoding is deterministic). */
static float *decoded_base(const qx_ivf *ivf) {
    const qx_quantizer *q = qx_ivf_quantizer(ivf);
    size_t M = qx_quantizer_steps(q);
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    const float *cent = qx_ivf_centroids(ivf);
    uint32_t *assign = malloc(sizeof(uint32_t) * NB);
    assert_int_equal(qx_assign_nearest(g_base, NB, cent, info.nlist, D, assign, NULL), 0);
    float *res = malloc(sizeof(float) * NB * D);
    for (size_t i = 0; i < NB; i++)
        for (size_t j = 0; j < D; j++) res[i * D + j] = g_base[i * D + j] - cent[assign[i] * D + j];
    uint8_t *codes = malloc(NB * M);
    assert_int_equal(qx_quantizer_encode(q, res, NB, codes), 0);
    assert_int_equal(qx_quantizer_decode(q, codes, NB, 0, res), 0);
    for (size_t i = 0; i < NB; i++)
        for (size_t j = 0; j < D; j++) res[i * D + j] += cent[assign[i] * D + j];
    free(assign);
    free(codes);
    return res;
}

static void test_ivf_equals_brute_force_over_decoded(void **state) {
    (void)state;
    qx_ivf *ivf = build_ivf(8, 3, 32, QX_METRIC_L2);
    float *rec = decoded_base(ivf);
    enum { K = 10 };
    int64_t *want = tu_brute_knn(rec, NB, g_queries, NQ, D, K);
    float dist[NQ * K];
    int64_t ids[NQ * K];
    /* every list, a shortlist of the whole base: the quantized first stage
     * keeps everything, the second stage is exact */
    for (int threads = 1; threads <= 2; threads++) {
        assert_int_equal(fs_search(ivf, K, 32, NB, threads, g_queries, NQ, dist, ids), 0);
        size_t same = 0;
        for (size_t i = 0; i < NQ; i++)
            for (size_t j = 0; j < K; j++) {
                same += ids[i * K + j] == want[i * K + j] * 3 + 1;
                int64_t row = (ids[i * K + j] - 1) / 3;
                float exact = qx_l2sqr(g_queries + i * D, rec + row * D, D);
                assert_true(fabsf(exact - dist[i * K + j]) <= 1e-3f * (1.0f + exact));
                if (j) assert_true(dist[i * K + j - 1] <= dist[i * K + j]);
            }
        fprintf(stderr, "fast-scan = brute force over decoded codes: %zu of %d (threads %d)\n", same,
                NQ * K, threads);
        assert_true(same >= NQ * K - 3); /* float ties may swap a pair */
    }
    /* one query with its lists split over two threads = the same query alone */
    float d1[K], d2[K];
    int64_t i1[K], i2[K];
    assert_int_equal(fs_search(ivf, K, 8, 40, 1, g_queries, 1, d1, i1), 0);
    assert_int_equal(fs_search(ivf, K, 8, 40, 2, g_queries, 1, d2, i2), 0);
    assert_memory_equal(i1, i2, sizeof i1);
    free(want);
    free(rec);
    qx_ivf_free(ivf);
}

/* k-recall@k of results whose ids are row * 3 + 1 (build_ivf) */
static double recall_rows(const int64_t *ids, const int64_t *gt, size_t nq, size_t k) {
    int64_t *rows = malloc(sizeof(int64_t) * nq * k);
    for (size_t i = 0; i < nq * k; i++) rows[i] = ids[i] < 0 ? -1 : (ids[i] - 1) / 3;
    double r = tu_k_recall(rows, k, gt, NULL, k, nq, k);
    free(rows);
    return r;
}

static void test_cascade_recall_synthetic(void **state) {
    (void)state;
    qx_ivf *ivf = build_ivf(16, 3, 32, QX_METRIC_L2); /* 12 B */
    enum { K = 10 };
    int64_t *gt = tu_brute_knn(g_base, NB, g_queries, NQ, D, K);
    float dist[NQ * K];
    int64_t ids[NQ * K];
    double r[4];
    size_t sl[4] = {10, 20, 40, 200};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fs_search(ivf, K, 8, sl[i], 1, g_queries, NQ, dist, ids), 0);
        r[i] = recall_rows(ids, gt, NQ, K);
    }
    fprintf(stderr, "synthetic 12 B cascade 10-recall@10 at nprobe 8, shortlist 10/20/40/200: %.3f %.3f %.3f %.3f\n",
            r[0], r[1], r[2], r[3]);
    assert_true(r[3] >= 0.7);
    assert_true(r[3] >= r[0] - 0.01 && r[2] >= r[0] - 0.01);
    free(gt);
    qx_ivf_free(ivf);
}

static void test_save_load_and_updates(void **state) {
    (void)state;
    qx_ivf *ivf = build_ivf(8, 3, 16, QX_METRIC_L2);
    enum { K = 10 };
    float d1[NQ * K], d2[NQ * K];
    int64_t i1[NQ * K], i2[NQ * K];
    assert_int_equal(fs_search(ivf, K, 4, 30, 1, g_queries, NQ, d1, i1), 0);
    const char *path = tu_tmpfile("fs.qinx");
    assert_int_equal(qx_ivf_save(ivf, path), 0);
    qx_ivf *back = NULL;
    assert_int_equal(qx_ivf_load(path, &back), 0);
    assert_int_equal(qx_ivf_check(back), 0);
    assert_int_equal(fs_search(back, K, 4, 30, 1, g_queries, NQ, d2, i2), 0);
    assert_memory_equal(i1, i2, sizeof i1);
    assert_memory_equal(d1, d2, sizeof d1);
    qx_ivf_info info;
    qx_ivf_get_info(back, &info);
    assert_int_equal(info.code_size, 8 / 2 + 3 + 1);
    assert_int_equal(info.quant_kind, QX_QUANT_FASTSCAN);
    /* remove every third vector and upsert some again: the blocks follow */
    int64_t rm[NB / 3 + 1];
    size_t nrm = 0, removed = 0;
    for (size_t i = 0; i < NB; i += 3) rm[nrm++] = (int64_t)i * 3 + 1;
    assert_int_equal(qx_ivf_remove(back, rm, nrm, &removed), 0);
    assert_int_equal(removed, nrm);
    assert_int_equal(qx_ivf_check(back), 0);
    assert_int_equal(fs_search(back, K, 16, NB, 1, g_queries, NQ, d2, i2), 0);
    for (size_t i = 0; i < NQ * K; i++) assert_true(i2[i] < 0 || ((i2[i] - 1) / 3) % 3 != 0);
    /* put them back: the same index as before the removal (same codes) */
    float *x = malloc(sizeof(float) * nrm * D);
    for (size_t j = 0; j < nrm; j++) memcpy(x + j * D, g_base + (size_t)(j * 3) * D, sizeof(float) * D);
    assert_int_equal(qx_ivf_add(back, x, rm, nrm), 0);
    assert_int_equal(qx_ivf_check(back), 0);
    assert_int_equal(fs_search(back, K, 16, NB, 1, g_queries, NQ, d2, i2), 0);
    assert_int_equal(fs_search(ivf, K, 16, NB, 1, g_queries, NQ, d1, i1), 0);
    assert_memory_equal(i1, i2, sizeof i1);
    free(x);
    /* a corrupted file is refused */
    FILE *f = fopen(path, "r+b");
    fseek(f, -100, SEEK_END);
    fputc(0x5A, f);
    fclose(f);
    qx_ivf *bad = NULL;
    assert_int_equal(qx_ivf_load(path, &bad), QX_EFORMAT);
    qx_ivf_free(back);
    qx_ivf_free(ivf);
}

static void test_inner_product(void **state) {
    (void)state;
    qx_ivf *ivf = build_ivf(8, 2, 16, QX_METRIC_IP);
    enum { K = 5 };
    float dist[NQ * K];
    int64_t ids[NQ * K];
    assert_int_equal(fs_search(ivf, K, 16, NB, 1, g_queries, NQ, dist, ids), 0);
    float *rec = decoded_base(ivf);
    for (size_t i = 0; i < NQ; i++) {
        /* the best score is the largest inner product over the decoded base */
        float best = -INFINITY;
        for (size_t r = 0; r < NB; r++) {
            float s = qx_dot(g_queries + i * D, rec + r * D, D);
            if (s > best) best = s;
        }
        assert_true(fabsf(best - dist[i * K]) <= 1e-3f * (1.0f + fabsf(best)));
        for (size_t j = 1; j < K; j++) assert_true(dist[i * K + j - 1] >= dist[i * K + j]);
    }
    free(rec);
    qx_ivf_free(ivf);
}

static void test_siftsmall_cascade(void **state) {
    (void)state;
    qx_matrix b = {0}, q = {0};
    int32_t *gt = NULL;
    size_t gk;
    if (!tu_siftsmall(&b, &q, &gt, &gk)) {
        fprintf(stderr, "siftsmall absent: cascade recall test skipped\n");
        skip();
    }
    qx_fs_opts o;
    qx_fs_opts_init(&o); /* 16 x 4-bit + 7 x 8-bit + norm = 16 B */
    o.product4 = g_product;
    o.kmeans_iters = 10;
    o.beam = o.train_beam = 2;
    qx_quantizer *quant = NULL;
    assert_int_equal(qx_fs_new(&quant, b.d, &o), 0);
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = 64;
    qx_ivf *ivf = NULL;
    assert_int_equal(qx_ivf_new(&ivf, b.d, quant, &io), 0);
    assert_int_equal(qx_ivf_train(ivf, b.data, b.n), 0);
    int64_t *ids = malloc(sizeof(int64_t) * b.n);
    for (size_t i = 0; i < b.n; i++) ids[i] = (int64_t)i;
    assert_int_equal(qx_ivf_add(ivf, b.data, ids, b.n), 0);
    enum { K = 10 };
    float *dist = malloc(sizeof(float) * q.n * K);
    int64_t *res = malloc(sizeof(int64_t) * q.n * K);
    double rc[3];
    size_t sl[3] = {10, 40, 200};
    for (int s = 0; s < 3; s++) {
        qx_search_params p;
        qx_search_params_init(&p);
        p.nprobe = 16;
        p.shortlist = sl[s];
        p.threads = 1;
        assert_int_equal(qx_ivf_search(ivf, NULL, q.data, q.n, K, &p, dist, res), 0);
        rc[s] = tu_k_recall(res, K, NULL, gt, gk, q.n, K);
    }
    fprintf(stderr, "siftsmall 16 B cascade (%s 4-bit part) 10-recall@10 (nprobe 16; shortlist 10/40/200): %.3f %.3f %.3f\n",
            g_product ? "product" : "residual", rc[0], rc[1], rc[2]);
    /* the full code re-ranks what the 4-bit scan found */
    assert_true(rc[1] > rc[0] + 0.05);
    assert_true(rc[2] >= 0.65);
    free(dist);
    free(res);
    free(ids);
    qx_ivf_free(ivf);
    qx_matrix_free(&b);
    qx_matrix_free(&q);
    qx_free(gt);
}

/* ---- two-level coarse quantizer, filtered search ------------------------ */

static void test_coarse2(void **state) {
    (void)state;
    enum { NB2 = 256 * 40 }; /* nlist 256 (two-level applies) needs 39 points a list */
    float *base2 = tu_clustered(NB2, D, 200, 23);
    qx_ivf *ivf = build_ivf_on(base2, NB2, 8, 2, 256, QX_METRIC_L2);
    assert_non_null(ivf->coarse2);
    const qx__coarse2 *c2 = ivf->coarse2;
    assert_int_equal(c2->G, 16);
    /* every list in exactly one slot */
    size_t *seen = calloc(256, sizeof(size_t));
    for (size_t s = 0; s < c2->nslots; s++)
        if (c2->slot_list[s] != UINT32_MAX) seen[c2->slot_list[s]]++;
    for (size_t l = 0; l < 256; l++) assert_int_equal(seen[l], 1);
    free(seen);
    /* all groups kept = the exact top-nprobe lists (brute force over the
     * centroids), with qc = ⟨q, centroid⟩ */
    const float *cent = qx_ivf_centroids(ivf);
    float *qc = malloc(sizeof(float) * 256), scratch[64];
    qx__topk probes = {malloc(sizeof(float) * 256), malloc(sizeof(uint64_t) * 256), 0, 0};
    for (size_t i = 0; i < NQ; i++) {
        const float *q = g_queries + i * D;
        for (size_t np = 1; np <= 64; np *= 4) {
            qx__coarse2_probes(ivf, c2, q, np, c2->G, &probes, qc, scratch);
            assert_int_equal(probes.n, np);
            float worst = -INFINITY;
            for (size_t j = 0; j < probes.n; j++) {
                size_t l = probes.val[j];
                assert_true(fabsf(qc[l] - qx_dot(q, cent + l * D, D)) <= 1e-3f * (1.0f + fabsf(qc[l])));
                float dl = qx_l2sqr(q, cent + l * D, D);
                if (dl > worst) worst = dl;
            }
            size_t closer = 0; /* lists strictly closer than the worst kept, beyond a float tie */
            for (size_t l = 0; l < 256; l++) closer += qx_l2sqr(q, cent + l * D, D) < worst * (1 - 1e-5f);
            assert_true(closer <= np - 1);
        }
    }
    free(qc);
    free(probes.key);
    free(probes.val);
    /* search: all groups = flat (up to float ties); default within a few
     * points of flat's recall */
    enum { K = 10 };
    int64_t *gt = tu_brute_knn(base2, NB2, g_queries, NQ, D, K);
    float dist[NQ * K];
    int64_t flat[NQ * K], all[NQ * K], def[NQ * K];
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 8;
    p.shortlist = 40;
    p.threads = 1;
    p.coarse_groups = QX_COARSE_FLAT;
    assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, NQ, K, &p, dist, flat), 0);
    p.coarse_groups = c2->G;
    assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, NQ, K, &p, dist, all), 0);
    size_t same = 0;
    for (size_t i = 0; i < NQ * K; i++) same += flat[i] == all[i];
    assert_true(same >= NQ * K - 5);
    p.coarse_groups = 0;
    assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, NQ, K, &p, dist, def), 0);
    double rf = recall_rows(flat, gt, NQ, K), rd = recall_rows(def, gt, NQ, K);
    fprintf(stderr, "two-level coarse, nlist 256, nprobe 8: 10-recall@10 %.3f (flat %.3f)\n", rd, rf);
    assert_true(rd >= rf - 0.05);
    /* derived from the centroids: a loaded index searches identically */
    const char *path = tu_tmpfile("fs2.qinx");
    assert_int_equal(qx_ivf_save(ivf, path), 0);
    qx_ivf *back = NULL;
    assert_int_equal(qx_ivf_load(path, &back), 0);
    assert_non_null(back->coarse2);
    int64_t again[NQ * K];
    float dist2[NQ * K];
    assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, NQ, K, &p, dist, def), 0);
    assert_int_equal(qx_ivf_search(back, NULL, g_queries, NQ, K, &p, dist2, again), 0);
    assert_memory_equal(def, again, sizeof def);
    assert_memory_equal(dist, dist2, sizeof dist);
    qx_ivf_free(back);
    free(gt);
    free(base2);
    qx_ivf_free(ivf);
}

static int pass_even_row(void *ctx, int64_t id) {
    size_t *calls = ctx;
    __atomic_fetch_add(calls, 1, __ATOMIC_RELAXED);
    return ((id - 1) / 3) % 10 == 0; /* 10 % of the rows */
}

static void test_filtered_search(void **state) {
    (void)state;
    qx_ivf *ivf = build_ivf(8, 3, 32, QX_METRIC_L2);
    enum { K = 10 };
    /* brute force over the passing rows */
    size_t np = 0;
    float *pass = malloc(sizeof(float) * NB * D);
    int64_t *prow = malloc(sizeof(int64_t) * NB);
    for (size_t r = 0; r < NB; r += 10) {
        memcpy(pass + np * D, g_base + r * D, sizeof(float) * D);
        prow[np++] = (int64_t)r;
    }
    int64_t *gt = tu_brute_knn(pass, np, g_queries, NQ, D, K);
    for (size_t i = 0; i < NQ * K; i++) gt[i] = prow[gt[i]];
    float dist[NQ * K];
    int64_t ids[NQ * K];
    size_t calls = 0, visited = 0;
    qx_search_params p;
    qx_search_params_init(&p);
    p.nprobe = 4;
    p.shortlist = 40;
    p.threads = 1;
    p.filter = pass_even_row;
    p.filter_ctx = &calls;
    double rec[2];
    for (int run = 0; run < 2; run++) {
        p.threads = run + 1;
        assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, NQ, K, &p, dist, ids), 0);
        for (size_t i = 0; i < NQ * K; i++) assert_true(ids[i] >= 0 && ((ids[i] - 1) / 3) % 10 == 0);
        rec[run] = recall_rows(ids, gt, NQ, K);
    }
    assert_true(calls > 0);
    p.threads = 1;
    p.lists_visited = &visited;
    assert_int_equal(qx_ivf_search(ivf, NULL, g_queries, 1, K, &p, dist, ids), 0);
    fprintf(stderr, "fast-scan filtered (10 %% pass), nprobe 4: 10-recall@10 %.3f / %.3f (1 / 2 threads), "
                    "lists visited %zu\n", rec[0], rec[1], visited);
    assert_true(visited > 4);
    assert_true(rec[0] >= 0.7 && rec[0] == rec[1]);
    free(gt);
    free(pass);
    free(prow);
    qx_ivf_free(ivf);
}

/* ---- product-shaped 4-bit part (qx_fs_opts.product4) ------------------- */

/* Codewords live in their step's dimensions; decoding concatenates them;
 * the derived tables agree with the codebooks; blob version 2 round-trips
 * and its checks hold; the residual shape still writes version 1. */
static void test_product_quantizer(void **state) {
    (void)state;
    g_product = 1;
    size_t M4 = 16, M8 = 2, M = M4 / 2 + M8, n = 300; /* D = 24: steps of 1 or 2 dimensions */
    qx_quantizer *q = train_fs(M4, M8);
    const float *A4 = qx_fs_codebooks4(q), *A8 = qx_fs_codebooks8(q);
    const float *rows = qx_fs_product_rows(q), *pack = qx_fs_product_codewords(q);
    assert_non_null(rows);
    assert_non_null(pack);
    for (size_t m = 0; m < M4; m++) {
        size_t lo, hi;
        qx_fs_subspace(D, M4, m, &lo, &hi);
        assert_true(hi > lo && hi - lo <= 2);
        for (size_t k = 0; k < 16; k++)
            for (size_t t = 0; t < D; t++) {
                float a = A4[(m * 16 + k) * D + t];
                if (t < lo || t >= hi) assert_true(a == 0.0f);
                else {
                    assert_true(rows[t * 16 + k] == a);
                    assert_true(pack[16 * lo + k * (hi - lo) + (t - lo)] == a);
                }
            }
    }
    uint8_t *c = malloc(n * M);
    float *dec = malloc(sizeof(float) * n * D);
    assert_int_equal(qx_quantizer_encode(q, g_base, n, c), 0);
    assert_int_equal(qx_quantizer_decode(q, c, n, 0, dec), 0);
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < M4; m++) {
            size_t lo, hi, k = m % 2 ? c[i * M + m / 2] >> 4 : c[i * M + m / 2] & 15;
            qx_fs_subspace(D, M4, m, &lo, &hi);
            for (size_t t = lo; t < hi; t++) {
                float s = A4[(m * 16 + k) * D + t];
                for (size_t j = 0; j < M8; j++) s += A8[(j * 256 + c[i * M + M4 / 2 + j]) * D + t];
                assert_true(fabsf(s - dec[i * D + t]) < 1e-4f);
            }
            /* a product step takes the nearest codeword of its dimensions
             * (the rest of the code refines what is left) */
        }
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(qx_quantizer_serialize(q, &blob, &len), 0);
    uint32_t version;
    memcpy(&version, blob + 20, 4);
    assert_int_equal(version, 2);
    qx_quantizer *q2 = NULL;
    assert_int_equal(qx_quantizer_deserialize(blob, len, &q2), 0);
    assert_non_null(qx_fs_product_rows(q2));
    uint8_t *c2 = malloc(n * M);
    assert_int_equal(qx_quantizer_encode(q2, g_base, n, c2), 0);
    assert_memory_equal(c, c2, n * M);
    qx_quantizer_free(q2);
    uint8_t *b2 = malloc(len);
    qx_quantizer *bad = NULL;
    memcpy(b2, blob, len);
    b2[20 + 40] = 2; /* product4 must be 0 or 1 */
    assert_int_equal(qx_quantizer_deserialize(b2, len, &bad), QX_EFORMAT);
    memcpy(b2, blob, len);
    float one = 1.0f; /* step 0, codeword 0, last dimension: outside step 0 */
    memcpy(b2 + 20 + 44 + (D - 1) * 4, &one, 4);
    assert_int_equal(qx_quantizer_deserialize(b2, len, &bad), QX_EFORMAT);
    assert_null(bad);
    free(b2);
    qx_free(blob);
    /* more product steps than dimensions are refused */
    qx_fs_opts o;
    qx_fs_opts_init(&o);
    o.product4 = 1;
    o.M4 = 26;
    o.M8 = 0;
    assert_int_equal(qx_fs_new(&bad, D, &o), QX_EINVAL);
    /* the residual shape writes the version-1 body older builds read */
    g_product = 0;
    qx_quantizer *r = train_fs(8, 1);
    assert_null(qx_fs_product_rows(r));
    assert_int_equal(qx_quantizer_serialize(r, &blob, &len), 0);
    memcpy(&version, blob + 20, 4);
    assert_int_equal(version, 1);
    qx_free(blob);
    qx_quantizer_free(r);
    qx_quantizer_free(q);
    free(c);
    free(c2);
    free(dec);
}

static void test_product_ivf_equals_brute_force(void **state) {
    g_product = 1;
    test_ivf_equals_brute_force_over_decoded(state);
}

static void test_product_save_load_and_updates(void **state) {
    g_product = 1;
    test_save_load_and_updates(state);
}

static void test_product_inner_product(void **state) {
    g_product = 1;
    test_inner_product(state);
}

static void test_product_siftsmall(void **state) {
    g_product = 1;
    test_siftsmall_cascade(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_kernels_match_scalar),
        cmocka_unit_test(test_find_lt_and_decode_l2),
        cmocka_unit_test(test_dot16t_matches_scalar),
        cmocka_unit_test(test_lut_and_product_kernels_match_scalar),
        cmocka_unit_test(test_pack_roundtrip_and_lut_bound),
        cmocka_unit_test(test_quantizer_roundtrip),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_ivf_equals_brute_force_over_decoded),
        cmocka_unit_test(test_cascade_recall_synthetic),
        cmocka_unit_test(test_save_load_and_updates),
        cmocka_unit_test(test_inner_product),
        cmocka_unit_test(test_siftsmall_cascade),
        cmocka_unit_test(test_coarse2),
        cmocka_unit_test(test_filtered_search),
        cmocka_unit_test_teardown(test_product_quantizer, reset_shape),
        cmocka_unit_test_teardown(test_product_ivf_equals_brute_force, reset_shape),
        cmocka_unit_test_teardown(test_product_save_load_and_updates, reset_shape),
        cmocka_unit_test_teardown(test_product_inner_product, reset_shape),
        cmocka_unit_test_teardown(test_product_siftsmall, reset_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
