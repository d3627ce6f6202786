/* tools/cli_search.c — `qinx search`: run queries against an index file and,
 * with --gt, report recall@1/10/100, 10-recall@10 and QPS. QPS is measured
 * over the whole query set on --threads threads (default 1, the protocol of
 * the benchmark: single-threaded), best of --runs runs. --index may name
 * the manifest of a sharded index (qinx/shard.h): every shard is checked,
 * loaded and searched, and the top-k merged. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "qinx/core.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qinx search --index INDEX --queries FILE [options]\n"
            "  --index INDEX    an index file, or the manifest of a sharded index\n"
            "  --gt FILE        ground truth (.ivecs): report recall and QPS\n"
            "  --k K            neighbours per query (default 100 with --gt, else 10)\n"
            "  --nprobe N       lists visited per query (default 16)\n"
            "  --rerank N       re-rank a shortlist of N by exact decoding (default 0)\n"
            "  --shortlist N    fastscan index: candidates of the 4-bit scan re-ranked with the\n"
            "                   whole code (default 0 = 4 x k)\n"
            "  --coarse-groups G  fastscan index (L2, nlist >= 256): groups of lists whose\n"
            "                   centroids are scored (default 0 = groups/4 + nprobe/2; 'flat' = all)\n"
            "  --threads T      search threads (default 1)\n"
            "  --runs R         timed runs, best reported (default 1)\n"
            "  --json           one JSON object on stdout\n"
            "  --profile        fastscan index: CPU time per query in coarse / LUT / scan /\n"
            "                   refine (--runs extra runs on one thread, least per phase)\n"
            "  --print N        print the results of the first N queries (default 0; 3 without --gt)\n");
}

int qx_cli_search(int argc, char **argv) {
    const char *index_path = NULL, *q_path = NULL, *gt_path = NULL;
    size_t k = 0, nprobe = 16, rerank = 0, shortlist = 0, cgroups = 0, threads = 1, runs = 1, print = (size_t)-1;
    int json = 0, profile = 0;
    static const struct option opts[] = {
        {"index", 1, 0, 'i'}, {"queries", 1, 0, 'q'}, {"gt", 1, 0, 'g'},     {"k", 1, 0, 'k'},
        {"nprobe", 1, 0, 'n'}, {"rerank", 1, 0, 'r'}, {"threads", 1, 0, 'T'}, {"runs", 1, 0, 'R'},
        {"json", 0, 0, 'j'}, {"shortlist", 1, 0, 's'}, {"profile", 0, 0, 'P'}, {"coarse-groups", 1, 0, 'G'},   {"print", 1, 0, 'p'},  {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'i': index_path = optarg; break;
        case 'q': q_path = optarg; break;
        case 'g': gt_path = optarg; break;
        case 'k': bad = cli_parse_size("--k", optarg, 1, QX_MAX_K, &k); break;
        case 'n': bad = cli_parse_size("--nprobe", optarg, 1, QX_MAX_NLIST, &nprobe); break;
        case 'r': bad = cli_parse_size("--rerank", optarg, 0, QX_MAX_K * 10, &rerank); break;
        case 'T': bad = cli_parse_size("--threads", optarg, 1, 256, &threads); break;
        case 'R': bad = cli_parse_size("--runs", optarg, 1, 100, &runs); break;
        case 'p': bad = cli_parse_size("--print", optarg, 0, SIZE_MAX, &print); break;
        case 'j': json = 1; break;
        case 'P': profile = 1; break;
        case 's': bad = cli_parse_size("--shortlist", optarg, 0, QX_MAX_SHORTLIST, &shortlist); break;
        case 'G':
            if (!strcmp(optarg, "flat")) cgroups = QX_COARSE_FLAT;
            else bad = cli_parse_size("--coarse-groups", optarg, 0, QX_MAX_NLIST, &cgroups);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (!index_path || !q_path || optind < argc) {
        fprintf(stderr, "qinx search: --index and --queries are required\n");
        usage(stderr);
        return 2;
    }
    if (!k) k = gt_path ? 100 : 10;
    if (print == (size_t)-1) print = gt_path ? 0 : 3;
    qx_ivf *ivf = NULL;
    qx_sharded *sh = NULL;
    qx_matrix q = {0};
    int32_t *gt = NULL;
    size_t gt_n = 0, gt_k = 0;
    float *dist = NULL;
    int64_t *ids = NULL;
    qx_ivf_search_ctx *ctx = NULL;
    int sharded = qx_manifest_probe(index_path);
    if (sharded && profile) {
        fprintf(stderr, "qinx search: --profile takes one index file, not a shard manifest\n");
        return 2;
    }
    int rc = sharded ? qx_sharded_open(&sh, index_path) : qx_ivf_load(index_path, &ivf);
    if (rc == 0) rc = qx_vecs_read(q_path, 0, &q);
    if (rc == 0 && gt_path) rc = qx_ivecs_read(gt_path, 0, &gt, &gt_n, &gt_k);
    if (rc) goto out;
    qx_ivf_info info;
    qx_ivf_get_info(sh ? qx_sharded_shard(sh, 0) : ivf, &info);
    if (q.d != info.d) {
        rc = QX_EDIM;
        fprintf(stderr, "qinx search: queries have dimension %zu, the index %zu\n", q.d, info.d);
        goto out;
    }
    if (gt && gt_n < q.n) {
        rc = QX_EDIM;
        fprintf(stderr, "qinx search: %zu queries but ground truth for %zu\n", q.n, gt_n);
        goto out;
    }
    dist = malloc(sizeof(float) * q.n * k);
    ids = malloc(sizeof(int64_t) * q.n * k);
    if (!dist || !ids) {
        rc = QX_ENOMEM;
        fprintf(stderr, "qinx search: out of memory for %zu x %zu results\n", q.n, k);
        goto out;
    }
    /* One BLAS/OpenMP thread per search thread: idle OpenBLAS workers spin
     * (sched_yield) and took a third of single-threaded search time. */
    openblas_set_num_threads(1);
    omp_set_num_threads((int)threads);
    if (!sh && (rc = qx_ivf_search_ctx_new(&ctx, ivf))) goto out;
    qx_search_params sp;
    qx_search_params_init(&sp);
    sp.nprobe = nprobe;
    sp.rerank = rerank;
    sp.shortlist = shortlist;
    sp.coarse_groups = cgroups;
    sp.threads = (int)threads;
    /* wall time, and the process's CPU time: on a shared machine a run
     * waiting for a core inflates the wall time, not the CPU time */
    double best = 1e300, best_cpu = 1e300;
    for (size_t r = 0; r < runs && rc == 0; r++) {
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        double t0 = cli_now();
        rc = sh ? qx_sharded_search(sh, q.data, q.n, k, &sp, dist, ids)
                : qx_ivf_search(ivf, ctx, q.data, q.n, k, &sp, dist, ids);
        double t = cli_now() - t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double tc = (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
        if (t < best) best = t;
        if (tc < best_cpu) best_cpu = tc;
    }
    qx_search_profile prof = {0};
    /* separate runs (--runs of them): the clock reads stay out of the QPS */
    for (size_t r = 0; rc == 0 && profile && r < runs; r++) {
        qx_search_params sp1 = sp;
        sp1.threads = 1;
        qx_search_profile p1 = {0};
        qx_ivf_profile_thread(&p1);
        rc = qx_ivf_search(ivf, ctx, q.data, q.n, k, &sp1, dist, ids);
        qx_ivf_profile_thread(NULL);
        /* per phase, the least over runs: a run the scheduler preempted is
         * inflated in the phase it happened in (the clock is the TSC) */
        if (r == 0) prof = p1;
        prof.coarse = p1.coarse < prof.coarse ? p1.coarse : prof.coarse;
        prof.lut = p1.lut < prof.lut ? p1.lut : prof.lut;
        prof.scan = p1.scan < prof.scan ? p1.scan : prof.scan;
        prof.refine = p1.refine < prof.refine ? p1.refine : prof.refine;
    }
    if (rc) goto out;
    double qps = q.n / (best > 0 ? best : 1e-9);
    qx_recall rec = {0};
    if (gt && (rc = qx_recall_compute(ids, k, gt, gt_k, q.n, &rec))) goto out;
    if (json) {
        fputs("{\"index\":", stdout);
        qx_json_fputs(stdout, index_path);
        printf(",\"nq\":%zu,\"k\":%zu,\"nprobe\":%zu,\"rerank\":%zu,\"threads\":%zu,"
               "\"shortlist\":%zu,\"qps\":%.1f,\"seconds\":%.6f,\"cpu_seconds\":%.6f",
               q.n, k, nprobe, rerank, threads, shortlist, qps, best, best_cpu);
        printf(",\"shards\":%zu", sh ? qx_sharded_count(sh) : (size_t)1);
        if (gt) { /* a figure k cannot support is NaN: JSON null */
            const char *names[4] = {"recall@1", "recall@10", "recall@100", "10-recall@10"};
            double vals[4] = {rec.r1, rec.r10, rec.r100, rec.r10at10};
            for (int i = 0; i < 4; i++) {
                if (isnan(vals[i])) printf(",\"%s\":null", names[i]);
                else printf(",\"%s\":%.4f", names[i], vals[i]);
            }
        }
        if (profile)
            printf(",\"profile_us\":{\"coarse\":%.3f,\"lut\":%.3f,\"scan\":%.3f,\"refine\":%.3f}",
                   1e6 * prof.coarse / q.n, 1e6 * prof.lut / q.n, 1e6 * prof.scan / q.n, 1e6 * prof.refine / q.n);
        printf("}\n");
    } else {
        printf("queries %zu  k %zu  nprobe %zu  rerank %zu  threads %zu", q.n, k, nprobe, rerank, threads);
        if (sh) printf("  shards %zu", qx_sharded_count(sh));
        printf("\n");
        if (gt)
            printf("recall@1 %.4f  recall@10 %.4f  recall@100 %.4f  10-recall@10 %.4f\n", rec.r1,
                   rec.r10, rec.r100, rec.r10at10);
        printf("QPS %.1f  (%.3f ms/query; CPU %.3f ms/query)\n", qps, 1e3 * best / q.n, 1e3 * best_cpu / q.n);
        if (profile)
            printf("per query (us, TSC): coarse %.2f  lut %.2f  scan %.2f  refine %.2f\n", 1e6 * prof.coarse / q.n,
                   1e6 * prof.lut / q.n, 1e6 * prof.scan / q.n, 1e6 * prof.refine / q.n);
    }
    for (size_t i = 0; i < print && i < q.n && !json; i++) {
        printf("query %zu:", i);
        for (size_t j = 0; j < k && j < 10; j++) printf(" %lld(%.4g)", (long long)ids[i * k + j], dist[i * k + j]);
        printf("%s\n", k > 10 ? " ..." : "");
    }
out:
    if (rc && rc != QX_EDIM && rc != QX_ENOMEM) cli_fail("search", rc);
    qx_ivf_search_ctx_free(ctx);
    qx_ivf_free(ivf);
    qx_sharded_free(sh);
    qx_matrix_free(&q);
    qx_free(gt);
    free(dist);
    free(ids);
    return rc ? 1 : 0;
}
