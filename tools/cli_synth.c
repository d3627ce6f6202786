/* tools/cli_synth.c — `qinx synth`: a generated dataset for machines without
 * real data: a Gaussian mixture (clustered like real embeddings), queries
 * drawn from the same mixture, and exact top-100 ground truth (FAISS flat
 * search through the binding). Deterministic for a seed. */
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qinx/rng.h"
#include "cli.h"


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
        case 'n': bad = cli_parse_size("--n", optarg, 1000, 100000000, &n); break;
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
                    "writes PREFIX_base.fvecs, PREFIX_query.fvecs, PREFIX_groundtruth.ivecs\n");
            return c == 'h' ? 0 : 2;
        }
        if (bad) return 2;
    }
    if (!prefix) {
        fprintf(stderr, "qinx synth: --out PREFIX is required\n");
        return 2;
    }
    uint64_t s = seed;
    float *cent = malloc(sizeof(float) * clusters * d);
    float *x = malloc(sizeof(float) * (n + nq) * d);
    float *dist = malloc(sizeof(float) * nq * 100);
    int64_t *lab = malloc(sizeof(int64_t) * nq * 100);
    int32_t *gt = malloc(sizeof(int32_t) * nq * 100);
    if (!cent || !x || !dist || !lab || !gt) {
        fprintf(stderr, "qinx synth: out of memory\n");
        return 1;
    }
    /* Cluster weights follow a power law, spreads vary per cluster. */
    for (size_t i = 0; i < clusters * d; i++) cent[i] = (float)(3.0 * qx_rng_normal(&s));
    for (size_t i = 0; i < n + nq; i++) {
        size_t k = (size_t)(clusters * pow(qx_rng_uniform(&s), 2.0));
        double spread = 0.5 + (double)(k % 7) / 6.0;
        for (size_t j = 0; j < d; j++) x[i * d + j] = cent[k * d + j] + (float)(spread * qx_rng_normal(&s));
    }
    char path[4096];
    int rc = 0;
    size_t k = n < 100 ? n : 100;
    FaissIndexFlatL2 *flat = NULL;
    if (faiss_IndexFlatL2_new_with(&flat, (idx_t)d) || faiss_Index_add(flat, (idx_t)n, x) ||
        faiss_Index_search(flat, (idx_t)nq, x + n * d, (idx_t)k, dist, lab)) {
        fprintf(stderr, "qinx synth: FAISS: %s\n", faiss_get_last_error());
        rc = 1;
    }
    faiss_Index_free(flat);
    for (size_t i = 0; rc == 0 && i < nq * k; i++) gt[i] = (int32_t)lab[i];
    snprintf(path, sizeof path, "%s_base.fvecs", prefix);
    if (rc == 0 && (rc = qx_fvecs_write(path, x, n, d))) rc = cli_fail("synth", rc);
    snprintf(path, sizeof path, "%s_query.fvecs", prefix);
    if (rc == 0 && (rc = qx_fvecs_write(path, x + n * d, nq, d))) rc = cli_fail("synth", rc);
    snprintf(path, sizeof path, "%s_groundtruth.ivecs", prefix);
    if (rc == 0 && (rc = qx_ivecs_write(path, gt, nq, k))) rc = cli_fail("synth", rc);
    if (rc == 0) fprintf(stderr, "qinx synth: wrote %s_{base,query}.fvecs and _groundtruth.ivecs (%zu x %zu, %zu queries)\n", prefix, n, d, nq);
    free(cent);
    free(x);
    free(dist);
    free(lab);
    free(gt);
    return rc ? 1 : 0;
}
