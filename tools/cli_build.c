/* tools/cli_build.c — `qinx build`: train an IVF index over a vector file
 * and save it. The training set is --train, or an evenly spaced sample of
 * the base (at most --max-train vectors) so that builds are deterministic. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qinx build --base FILE --out INDEX [options]\n"
            "  --base FILE        vectors to index (.fvecs or .bvecs); ids are row numbers\n"
            "  --train FILE       training vectors (default: a sample of the base)\n"
            "  --max-train N      at most N training vectors sampled from the base (default 100000)\n"
            "  --out INDEX        index file to write (atomically)\n"
            "  --bytes N          bytes stored per vector, norm byte included (default 16)\n"
            "  --nlist N          inverted lists (default 1024, capped at n_train/39)\n"
            "  --beam B           beam width of RQ encoding (default 5)\n"
            "  --metric l2|ip     distance (default l2)\n"
            "  --seed S           random seed (default 1234)\n"
            "  --threads T        threads (default: all cores)\n"
            "  --quiet            no progress on stderr\n");
}

int qx_cli_build(int argc, char **argv) {
    const char *base_path = NULL, *train_path = NULL, *out_path = NULL;
    size_t bytes = 16, nlist = 1024, beam = 5, seed = 1234, threads = 0, max_train = 100000;
    int quiet = 0;
    qx_metric metric = QX_METRIC_L2;
    static const struct option opts[] = {
        {"base", 1, 0, 'b'},    {"train", 1, 0, 't'}, {"out", 1, 0, 'o'},   {"bytes", 1, 0, 'B'},
        {"nlist", 1, 0, 'n'},   {"beam", 1, 0, 'w'},  {"seed", 1, 0, 's'},  {"threads", 1, 0, 'T'},
        {"quiet", 0, 0, 'q'},   {"metric", 1, 0, 'm'}, {"max-train", 1, 0, 'x'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'b': base_path = optarg; break;
        case 't': train_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'B': bad = cli_parse_size("--bytes", optarg, 2, QX_MAX_STEPS + 1, &bytes); break;
        case 'n': bad = cli_parse_size("--nlist", optarg, 1, QX_MAX_NLIST, &nlist); break;
        case 'w': bad = cli_parse_size("--beam", optarg, 1, 64, &beam); break;
        case 's': bad = cli_parse_size("--seed", optarg, 0, SIZE_MAX, &seed); break;
        case 'T': bad = cli_parse_size("--threads", optarg, 1, 256, &threads); break;
        case 'x': bad = cli_parse_size("--max-train", optarg, 256, SIZE_MAX, &max_train); break;
        case 'q': quiet = 1; break;
        case 'm':
            if (!strcmp(optarg, "l2")) metric = QX_METRIC_L2;
            else if (!strcmp(optarg, "ip")) metric = QX_METRIC_IP;
            else { fprintf(stderr, "qinx build: --metric is l2 or ip, got '%s'\n", optarg); bad = 1; }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (!base_path || !out_path || optind < argc) {
        fprintf(stderr, "qinx build: --base and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (threads) {
        char buf[24];
        snprintf(buf, sizeof buf, "%zu", threads);
        setenv("QX_THREADS", buf, 1);
        setenv("OMP_NUM_THREADS", buf, 1);
    }
    cli_progress prog;
    cli_progress_init(&prog, quiet);
    double t0 = cli_now();
    qx_matrix base = {0}, train = {0};
    int rc = qx_vecs_read(base_path, 0, &base);
    if (rc) return cli_fail("build", rc);
    if (train_path) {
        if ((rc = qx_vecs_read(train_path, 0, &train))) {
            qx_matrix_free(&base);
            return cli_fail("build", rc);
        }
        if (train.d != base.d) {
            fprintf(stderr, "qinx build: --train has dimension %zu, --base has %zu\n", train.d, base.d);
            qx_matrix_free(&base);
            qx_matrix_free(&train);
            return 1;
        }
    } else {
        size_t nt = base.n < max_train ? base.n : max_train;
        if ((rc = qx_matrix_alloc(&train, nt, base.d))) {
            qx_matrix_free(&base);
            return cli_fail("build", rc);
        }
        for (size_t i = 0; i < nt; i++)
            memcpy(train.data + i * base.d, base.data + (size_t)((double)i * base.n / nt) * base.d,
                   sizeof(float) * base.d);
    }
    cli_log(&prog, "qinx build: %zu base vectors, %zu training vectors, d=%zu, %zu bytes/vector",
            base.n, train.n, base.d, bytes);
    size_t M = metric == QX_METRIC_L2 ? bytes - 1 : bytes;
    qx_rq_opts ro;
    qx_rq_opts_init(&ro);
    ro.M = M;
    ro.beam = (int)beam;
    ro.seed = seed;
    ro.threads = (int)threads;
    qx_quantizer *q = NULL;
    qx_ivf *ivf = NULL;
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = nlist;
    io.metric = metric;
    io.seed = seed;
    if ((rc = qx_rq_new(&q, base.d, &ro)) == 0 && (rc = qx_ivf_new(&ivf, base.d, q, &io)) == 0) {
        qx_ivf_set_progress(ivf, cli_progress_fn, &prog);
        rc = qx_ivf_train(ivf, train.data, train.n);
        double t_train = cli_now() - t0;
        int64_t *ids = rc ? NULL : malloc(sizeof(int64_t) * (base.n ? base.n : 1));
        if (!rc && !ids) rc = QX_ENOMEM;
        for (size_t i = 0; ids && i < base.n; i++) ids[i] = (int64_t)i;
        if (rc == 0) rc = qx_ivf_add(ivf, base.data, ids, base.n);
        free(ids);
        cli_progress_done(&prog);
        if (rc == 0) rc = qx_ivf_save(ivf, out_path);
        if (rc == 0) {
            qx_ivf_info info;
            qx_ivf_get_info(ivf, &info);
            cli_log(&prog,
                    "qinx build: wrote %s: %zu vectors, nlist=%zu, %zu bytes/vector (M=%zu), "
                    "train %.1fs, total %.1fs",
                    out_path, info.ntotal, info.nlist, info.code_size, info.M, t_train,
                    cli_now() - t0);
        }
    }
    qx_ivf_free(ivf);
    qx_matrix_free(&base);
    qx_matrix_free(&train);
    return rc ? cli_fail("build", rc) : 0;
}
