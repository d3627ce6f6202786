/* tests/testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qinx/rng.h"
#include "qinx/error.h"
#include "qinx/vecfile.h"

void tu_rng_seed(tu_rng *r, uint64_t seed) { r->s = seed * 0x9E3779B97F4A7C15ull + 1; }

uint64_t tu_rng_next(tu_rng *r) { return qx_rng_next(&r->s); } /* splitmix64, qinx/rng.h */

double tu_rng_uniform(tu_rng *r) { return (double)(tu_rng_next(r) >> 11) * 0x1.0p-53; }

double tu_rng_normal(tu_rng *r) {
    double u1 = tu_rng_uniform(r), u2 = tu_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

float *tu_clustered(size_t n, size_t d, size_t clusters, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *centres = malloc(sizeof(float) * clusters * d);
    float *x = malloc(sizeof(float) * n * d);
    for (size_t i = 0; i < clusters * d; i++) centres[i] = (float)(2.0 * tu_rng_normal(&r));
    for (size_t i = 0; i < n; i++) {
        size_t c = tu_rng_next(&r) % clusters;
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = centres[c * d + j] + (float)tu_rng_normal(&r);
    }
    free(centres);
    return x;
}

int64_t *tu_brute_knn(const float *base, size_t nb, const float *q, size_t nq, size_t d,
                      size_t k) {
    int64_t *ids = malloc(sizeof(int64_t) * nq * k);
    float *best = malloc(sizeof(float) * k);
    for (size_t i = 0; i < nq; i++) {
        int64_t *row = ids + i * k;
        for (size_t j = 0; j < k; j++) best[j] = INFINITY, row[j] = -1;
        for (size_t b = 0; b < nb; b++) {
            double s = 0;
            for (size_t j = 0; j < d; j++) {
                double t = (double)q[i * d + j] - base[b * d + j];
                s += t * t;
            }
            if (s >= best[k - 1]) continue;
            size_t p = k - 1;
            while (p > 0 && best[p - 1] > s) {
                best[p] = best[p - 1];
                row[p] = row[p - 1];
                p--;
            }
            best[p] = (float)s;
            row[p] = (int64_t)b;
        }
    }
    free(best);
    return ids;
}

const char *tu_data_path(const char *rel) {
    static char buf[4096];
    const char *dir = getenv("QX_DATA_DIR");
    const char *cands[2] = {dir, "../shared/data"};
    for (int i = 0; i < 2; i++) {
        if (!cands[i] || !*cands[i]) continue;
        snprintf(buf, sizeof buf, "%s/%s", cands[i], rel);
        if (access(buf, R_OK) == 0) return buf;
    }
    return NULL;
}

void tu_skip_all(const char *why) {
    fprintf(stderr, "SKIPPED: %s\n", why);
    exit(77);
}

double tu_recall_at(const int64_t *result, size_t k_result, const int64_t *gt, size_t k_gt,
                    size_t nq, size_t k) {
    size_t hits = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < k && j < k_result; j++)
            if (result[i * k_result + j] == gt[i * k_gt]) {
                hits++;
                break;
            }
    return (double)hits / (double)nq;
}

const char *tu_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/qinx-test-XXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    return dir;
}

const char *tu_tmpfile(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tu_tmpdir(), name);
    return buf;
}

double tu_k_recall(const int64_t *res, size_t k_res, const int64_t *gt64, const int32_t *gt32,
                   size_t k_gt, size_t nq, size_t k) {
    size_t inter = 0;
    for (size_t i = 0; i < nq; i++)
        for (size_t t = 0; t < k; t++) {
            int64_t want = gt64 ? gt64[i * k_gt + t] : (int64_t)gt32[i * k_gt + t];
            for (size_t j = 0; j < k; j++)
                if (res[i * k_res + j] == want) {
                    inter++;
                    break;
                }
        }
    return nq ? inter / (double)(k * nq) : 0.0;
}

int tu_siftsmall(struct qx_matrix *base, struct qx_matrix *queries, int32_t **gt, size_t *gt_k) {
    /* tu_data_path returns a static buffer: one path at a time */
    static const char *files[3] = {"siftsmall/siftsmall_base.fvecs", "siftsmall/siftsmall_query.fvecs",
                                   "siftsmall/siftsmall_groundtruth.ivecs"};
    for (int i = 0; i < 3; i++)
        if (!tu_data_path(files[i])) return 0;
    size_t gn;
    if (qx_vecs_read(tu_data_path(files[0]), 0, base) || qx_vecs_read(tu_data_path(files[1]), 0, queries) ||
        qx_ivecs_read(tu_data_path(files[2]), 0, gt, &gn, gt_k)) {
        fprintf(stderr, "siftsmall: %s\n", qx_last_error());
        abort();
    }
    return 1;
}

unsigned char *tu_file_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    assert_true(n >= 0);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

void tu_file_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}
