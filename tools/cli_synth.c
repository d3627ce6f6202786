/* tools/cli_synth.c — `qinx synth`: a generated dataset for machines without
 * real data: a Gaussian mixture (clustered like real embeddings), queries
 * drawn from the same mixture (held back: never in the base), and exact
 * top-100 ground truth. Deterministic for a seed.
 *
 * Streamed, so a base larger than memory can be generated (issue 24: a 20M x
 * 128 base, 10 GB, for the out-of-core build): the base rows are generated
 * and written SYNTH_CHUNK rows at a time, then the queries (the same random
 * sequence as when everything was generated in one array, so the files are
 * byte for byte those of earlier versions), then the ground truth is
 * computed by reading the base back by row ranges: each chunk is searched
 * exactly with FAISS's flat index and the per-chunk top-k are merged into
 * the running top-k per query (equal distances: the lower row first). Peak
 * memory: one chunk (SYNTH_CHUNK x d floats) + the queries and their lists.
 */
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qinx/rng.h"
#include "qinx/vecfile.h"
#include "cli.h"

#define SYNTH_CHUNK 131072 /* rows generated / searched at a time (64 MB at d = 128) */

/* rows vectors of the mixture into x; the random sequence is consumed row by
 * row, as the one-array version did */
static void gen_rows(const float *cent, size_t clusters, size_t d, uint64_t *s, float *x, size_t rows) {
    for (size_t i = 0; i < rows; i++) {
        /* cluster weights follow a power law, spreads vary per cluster */
        size_t k = (size_t)(clusters * pow(qx_rng_uniform(s), 2.0));
        double spread = 0.5 + (double)(k % 7) / 6.0;
        for (size_t j = 0; j < d; j++) x[i * d + j] = cent[k * d + j] + (float)(spread * qx_rng_normal(s));
    }
}

static int write_rows(FILE *f, const float *x, size_t rows, size_t d) {
    int32_t dd = (int32_t)d;
    for (size_t i = 0; i < rows; i++)
        if (fwrite(&dd, 4, 1, f) != 1 || fwrite(x + i * d, sizeof(float), d, f) != d) return -1;
    return 0;
}

/* Merge the sorted lists (ad, ai) and (bd, bi) of k into (od, oi); a first on ties. */
static void merge_k(const float *ad, const int64_t *ai, const float *bd, const int64_t *bi, size_t k, float *od,
                    int64_t *oi) {
    size_t a = 0, b = 0;
    for (size_t r = 0; r < k; r++) {
        int take_a = bi[b] < 0 || (ai[a] >= 0 && ad[a] <= bd[b]);
        if (take_a) od[r] = ad[a], oi[r] = ai[a], a++;
        else od[r] = bd[b], oi[r] = bi[b], b++;
    }
}

/* Exact top-k of the nq queries over the base file, chunk by chunk. */
static int ground_truth(const char *base, const float *q, size_t nq, size_t d, size_t k, int32_t *gt) {
    qx_vecs_file *vf = NULL;
    int rc = qx_vecs_open(&vf, base);
    if (rc) return cli_fail("synth", rc);
    size_t n = qx_vecs_file_rows(vf);
    float *x = malloc(sizeof(float) * SYNTH_CHUNK * d);
    float *bd = malloc(sizeof(float) * nq * k), *cd = malloc(sizeof(float) * nq * k), *td = malloc(sizeof(float) * k);
    int64_t *bi = malloc(sizeof(int64_t) * nq * k), *ci = malloc(sizeof(int64_t) * nq * k),
            *ti = malloc(sizeof(int64_t) * k);
    if (!x || !bd || !cd || !td || !bi || !ci || !ti) {
        fprintf(stderr, "qinx synth: out of memory\n");
        rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < nq * k; i++) bd[i] = INFINITY, bi[i] = -1;
    for (size_t at = 0; rc == 0 && at < n; at += SYNTH_CHUNK) {
        size_t rows = n - at < SYNTH_CHUNK ? n - at : SYNTH_CHUNK;
        if ((rc = qx_vecs_read_rows(vf, at, rows, x))) {
            rc = cli_fail("synth", rc);
            break;
        }
        size_t kc = rows < k ? rows : k;
        FaissIndexFlatL2 *flat = NULL;
        if (faiss_IndexFlatL2_new_with(&flat, (idx_t)d) || faiss_Index_add(flat, (idx_t)rows, x) ||
            faiss_Index_search(flat, (idx_t)nq, q, (idx_t)kc, cd, ci)) {
            fprintf(stderr, "qinx synth: FAISS: %s\n", faiss_get_last_error());
            rc = 1;
        }
        faiss_Index_free(flat);
        for (size_t i = 0; rc == 0 && i < nq; i++) {
            float *cdi = cd + i * kc;
            int64_t *cii = ci + i * kc;
            for (size_t r = 0; r < kc; r++)
                if (cii[r] >= 0) cii[r] += (int64_t)at;
            /* the chunk's list padded to k with "none" */
            float pd[128];
            int64_t pi[128];
            for (size_t r = 0; r < k; r++) pd[r] = r < kc ? cdi[r] : INFINITY, pi[r] = r < kc ? cii[r] : -1;
            merge_k(bd + i * k, bi + i * k, pd, pi, k, td, ti);
            memcpy(bd + i * k, td, sizeof(float) * k);
            memcpy(bi + i * k, ti, sizeof(int64_t) * k);
        }
        if (n >= 10 * (size_t)SYNTH_CHUNK && (at / SYNTH_CHUNK) % 16 == 15)
            fprintf(stderr, "qinx synth: ground truth %zu / %zu rows\n", at + rows, n);
    }
    if (rc == 0 && (rc = qx_vecs_file_unchanged(vf))) rc = cli_fail("synth", rc);
    for (size_t i = 0; rc == 0 && i < nq * k; i++) gt[i] = (int32_t)bi[i];
    qx_vecs_close(vf);
    free(x), free(bd), free(cd), free(td), free(bi), free(ci), free(ti);
    return rc;
}

int qx_cli_synth(int argc, char **argv) {
    size_t n = 100000, nq = 1000, d = 64, clusters = 256, seed = 1234;
    const char *prefix = NULL;
    static const struct option opts[] = {{"n", 1, 0, 'n'},       {"queries", 1, 0, 'q'},
                                         {"d", 1, 0, 'd'},       {"clusters", 1, 0, 'c'},
                                         {"seed", 1, 0, 's'},    {"out", 1, 0, 'o'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'n': bad = cli_parse_size("--n", optarg, 1000, 2000000000, &n); break;
        case 'q': bad = cli_parse_size("--queries", optarg, 1, 1000000, &nq); break;
        case 'd': bad = cli_parse_size("--d", optarg, 1, 4096, &d); break;
        case 'c': bad = cli_parse_size("--clusters", optarg, 1, 1000000, &clusters); break;
        case 's': bad = cli_parse_size("--seed", optarg, 0, SIZE_MAX, &seed); break;
        case 'o': prefix = optarg; break;
        case 'h':
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: qinx synth --out PREFIX [--n 100000] [--queries 1000] [--d 64] "
                    "[--clusters 256] [--seed 1234]\n"
                    "writes PREFIX_base.fvecs, PREFIX_query.fvecs, PREFIX_groundtruth.ivecs (exact top-100);\n"
                    "the base is streamed to disk: it may be larger than memory\n");
            return c == 'h' ? 0 : 2;
        }
        if (bad) return 2;
    }
    if (!prefix) {
        fprintf(stderr, "qinx synth: --out PREFIX is required\n");
        return 2;
    }
    uint64_t s = seed;
    size_t k = n < 100 ? n : 100;
    float *cent = malloc(sizeof(float) * clusters * d);
    float *x = malloc(sizeof(float) * SYNTH_CHUNK * d);
    float *q = malloc(sizeof(float) * nq * d);
    int32_t *gt = malloc(sizeof(int32_t) * nq * k);
    char path[4096], tmp[4200];
    int rc = 0;
    if (!cent || !x || !q || !gt) {
        fprintf(stderr, "qinx synth: out of memory\n");
        rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < clusters * d; i++) cent[i] = (float)(3.0 * qx_rng_normal(&s));
    snprintf(path, sizeof path, "%s_base.fvecs", prefix);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = rc ? NULL : fopen(tmp, "wb");
    if (!rc && !f) {
        fprintf(stderr, "qinx synth: cannot create %s: %s\n", tmp, strerror(errno));
        rc = 1;
    }
    for (size_t at = 0; rc == 0 && at < n; at += SYNTH_CHUNK) {
        size_t rows = n - at < SYNTH_CHUNK ? n - at : SYNTH_CHUNK;
        gen_rows(cent, clusters, d, &s, x, rows);
        if (write_rows(f, x, rows, d)) {
            fprintf(stderr, "qinx synth: writing %s: %s\n", tmp, strerror(errno));
            rc = 1;
        }
        if (n >= 10 * (size_t)SYNTH_CHUNK && (at / SYNTH_CHUNK) % 16 == 15)
            fprintf(stderr, "qinx synth: base %zu / %zu rows\n", at + rows, n);
    }
    if (f && (fflush(f) || fsync(fileno(f)) || fclose(f) != 0) && rc == 0) {
        fprintf(stderr, "qinx synth: writing %s: %s\n", tmp, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && rename(tmp, path)) {
        fprintf(stderr, "qinx synth: rename to %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    if (rc) unlink(tmp);
    if (rc == 0) gen_rows(cent, clusters, d, &s, q, nq); /* after the base: held back from it */
    if (rc == 0) rc = ground_truth(path, q, nq, d, k, gt);
    snprintf(path, sizeof path, "%s_query.fvecs", prefix);
    if (rc == 0 && (rc = qx_fvecs_write(path, q, nq, d))) rc = cli_fail("synth", rc);
    snprintf(path, sizeof path, "%s_groundtruth.ivecs", prefix);
    if (rc == 0 && (rc = qx_ivecs_write(path, gt, nq, k))) rc = cli_fail("synth", rc);
    if (rc == 0) fprintf(stderr, "qinx synth: wrote %s_{base,query}.fvecs and _groundtruth.ivecs (%zu x %zu, %zu queries)\n", prefix, n, d, nq);
    free(cent);
    free(x);
    free(q);
    free(gt);
    return rc ? 1 : 0;
}
