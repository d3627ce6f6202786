/* tools/cli_build.c — `qinx build`: train an IVF index over a vector file
 * and save it. The training set is --train, or a sample of at most
 * --max-train base vectors drawn uniformly at random over the whole file
 * (seeded by --seed, so builds stay deterministic; --train-sample strided
 * or first for the other ways). Files are often sorted (by source, time or
 * class), so the first N rows are not a sample of the data; the DERP report
 * records which sample was drawn.
 *
 * With --replace INDEX the build is a gated rebuild: the candidate is saved
 * beside the live index (INDEX.candidate), loaded back (so a corrupt or
 * truncated write is caught), checked by the DERP gate against the data and
 * the live index, and renamed over INDEX only if every check passes. The
 * report goes to INDEX.derp.json either way. A crash at any moment leaves
 * INDEX as it was or as a fully verified candidate: the only change to it
 * is one rename(2).
 *
 * The base is never read whole for --out: it is opened by row ranges
 * (qx_vecs_file), the training sample is read row by row, and the base is
 * encoded CLI_BUILD_CHUNK rows at a time (build_stream.c), so the peak
 * memory is the training sample plus the codes. --replace still reads the
 * base into memory, because the DERP gate measures drift and recall on it.
 * --mpi is the distributed build of tools/mpi/ (the qinx-mpi program). */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: qinx build --base FILE --out INDEX [options]\n"
            "  --base FILE        vectors to index (.fvecs or .bvecs); ids are row numbers\n"
            "  --train FILE       training vectors (default: a sample of the base)\n"
            "  --max-train N      at most N training vectors sampled from the base (default 100000)\n"
            "  --train-sample S   how they are drawn: random (default: uniform over the whole\n"
            "                     file, seeded by --seed), strided (evenly spaced rows) or\n"
            "                     first (the first N rows; not representative of sorted files)\n"
            "  --out INDEX        index file to write (atomically)\n"
            "  --bytes N          bytes stored per vector, norm byte included (default 16)\n"
            "  --nlist N          inverted lists (default 1024, capped at n_train/39)\n"
            "  --beam B           beam width of encoding (default 5)\n"
            "  --train-beam B     rq: beam width while training (default: --beam; 1 is fastest)\n"
            "  --quantizer Q      rq (residual quantization, default), qinco (QINCo-style) or\n"
            "                     fastscan (4-bit steps scanned in SIMD registers + 8-bit steps)\n"
            "  --fs-shape S       fastscan: residual (default: each 4-bit step spans every\n"
            "                     dimension) or product (step m owns d/steps dimensions, a PQ:\n"
            "                     16x cheaper look-up tables; docs/fastscan.md)\n"
            "  --fs-steps N       fastscan: 4-bit steps (even; default: as many as half the\n"
            "                     bytes hold, the rest of --bytes goes to 8-bit steps)\n"
            "  --qinco-L N        qinco: residual blocks per step (default 1)\n"
            "  --qinco-h N        qinco: hidden size of the blocks (default 128)\n"
            "  --qinco-A N        qinco: candidates pre-selected per beam entry (default 8)\n"
            "  --qinco-context on|off  qinco: start each reconstruction from the vector's list\n"
            "                     centroid, so the networks see where the residual lies\n"
            "                     (QINCo's IVF variant; default on)\n"
            "  --epochs N         qinco: training epochs (default 30; with --train-minutes,\n"
            "                     as many as the budget allows)\n"
            "  --train-minutes M  qinco: wall-clock training budget; keeps the best model\n"
            "  --metric l2|ip     distance (default l2)\n"
            "  --seed S           random seed (default 1234)\n"
            "  --threads T        threads (default: all cores)\n"
            "  --quiet            no progress on stderr\n"
            "  --replace INDEX    gated rebuild: publish over INDEX only if the DERP gate passes\n"
            "                     (exit 3 and INDEX untouched otherwise; report in INDEX.derp.json)\n"
            "  --gate CONFIG      gate thresholds (docs/derp.md); defaults otherwise\n"
            "  --mpi              distributed build under mpirun (the qinx-mpi program): each\n"
            "                     rank encodes its rows into a shard, --out is the manifest\n"
            "  --merge            with --mpi: write one index at --out instead of shards\n"
#ifdef QX_FAULT_INJECTION
            "  --inject-fault F   (qinx-fault only) testing aid for the gate: collapse (90%% of\n"
            "                     codewords merged), mismatch (train on the data with half of\n"
            "                     the dimensions permuted, scaled and shifted) or corrupt (flip\n"
            "                     bytes of the written candidate)\n"
#endif
            );
}

#ifdef QX_FAULT_INJECTION
/* Planted faults for the DERP gate tests: compiled only into the test-only
 * qinx-fault program (CMakeLists.txt), never into the installed qinx. */

/* Testing aid: merge 90% of each 8-bit step's codewords onto 4 of them
 * (k >= 26 copies k % 4), and 14 of each 4-bit step's 16 onto 2. */
static void collapse_steps(float *cb, size_t steps, size_t K, size_t keep, size_t from, size_t d) {
    for (size_t m = 0; m < steps; m++)
        for (size_t k = from; k < K; k++)
            memcpy(cb + (m * K + k) * d, cb + (m * K + k % keep) * d, sizeof(float) * d);
}

static int cli_collapse_codebooks(qx_ivf *ivf) {
    qx_quantizer *q = (qx_quantizer *)qx_ivf_quantizer(ivf); /* fault injection only */
    qx_quant_kind kind = qx_quantizer_kind(q);
    size_t d = qx_quantizer_dim(q);
    size_t M8 = kind == QX_QUANT_RQ ? qx_quantizer_steps(q) : qx_fs_steps8(q);
    size_t M4 = kind == QX_QUANT_FASTSCAN ? qx_fs_steps4(q) : 0;
    const float *src8 = kind == QX_QUANT_RQ ? qx_rq_codebooks(q) : qx_fs_codebooks8(q);
    if (kind != QX_QUANT_RQ && kind != QX_QUANT_FASTSCAN) {
        fprintf(stderr, "qinx build: --inject-fault collapse needs --quantizer rq or fastscan\n");
        return QX_EINVAL;
    }
    float *cb8 = malloc(sizeof(float) * (M8 ? M8 : 1) * 256 * d);
    float *cb4 = malloc(sizeof(float) * (M4 ? M4 : 1) * 16 * d);
    int rc = cb8 && cb4 ? 0 : QX_ENOMEM;
    if (rc == 0) {
        if (M8) memcpy(cb8, src8, sizeof(float) * M8 * 256 * d);
        collapse_steps(cb8, M8, 256, 4, 26, d);
        if (M4) memcpy(cb4, qx_fs_codebooks4(q), sizeof(float) * M4 * 16 * d);
        collapse_steps(cb4, M4, 16, 2, 2, d);
        rc = kind == QX_QUANT_RQ ? qx_rq_set_codebooks(q, cb8)
                                 : qx_fs_set_codebooks(q, cb4, M8 ? cb8 : NULL);
    }
    free(cb8);
    free(cb4);
    fprintf(stderr, "qinx build: FAULT INJECTED: 90%% of the codewords collapsed onto 4 per step%s\n",
            M4 ? " (4-bit steps: 14 of 16 onto 2)" : "");
    return rc;
}

static void corrupt_file(const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    for (int i = 1; i <= 8; i++) {
        fseek(f, n * i / 9, SEEK_SET);
        int c = fgetc(f);
        fseek(f, n * i / 9, SEEK_SET);
        fputc(c ^ 0x5A, f);
    }
    fclose(f);
    fprintf(stderr, "qinx build: FAULT INJECTED: 8 bytes of %s flipped\n", path);
}

/* Reverse the first half of the dimensions, scale them by 2 and shift them
 * by 20: the codebooks then fit another distribution. */
static void mismatch_training(qx_matrix *train) {
    size_t d = train->d, h = d / 2;
    float *tmp = malloc(sizeof(float) * (h ? h : 1));
    for (size_t i = 0; tmp && i < train->n; i++) {
        float *v = train->data + i * d;
        for (size_t j = 0; j < h; j++) tmp[j] = 2.0f * v[h - 1 - j] + 20.0f;
        memcpy(v, tmp, sizeof(float) * h);
    }
    free(tmp);
    fprintf(stderr, "qinx build: FAULT INJECTED: training set transformed (half the dimensions)\n");
}
#endif

/* Save the candidate beside `live`, reload it, gate it, publish or discard.
 * Returns the exit status: 0 published, 3 rejected, 1 error. */
static int cli_gated_publish(const qx_ivf *cand_mem, const float *data, size_t n,
                             const char *live, const char *gate_path, const char *fault,
                             const char *train_sample, cli_progress *prog) {
    char cand_path[4096], report_path[4096];
    snprintf(cand_path, sizeof cand_path, "%s.candidate", live);
    snprintf(report_path, sizeof report_path, "%s.derp.json", live);
    qx_gate_config cfg;
    qx_gate_config_init(&cfg);
    int rc = gate_path ? qx_gate_config_load(gate_path, &cfg) : 0;
    if (rc) return cli_fail("build", rc);
    if ((rc = qx_ivf_save(cand_mem, cand_path))) return cli_fail("build", rc);
#ifdef QX_FAULT_INJECTION
    if (fault && !strcmp(fault, "corrupt")) corrupt_file(cand_path);
#endif
    qx_ivf *cand = NULL, *old = NULL;
    qx_derp_report *rep = NULL;
    int passed = 0;
    double t0 = cli_now();
    if (qx_ivf_load(cand_path, &cand) != 0) {
        /* A candidate that does not read back is rejected outright. */
        char why[1024];
        snprintf(why, sizeof why, "%s", qx_last_error());
        rc = qx_derp_report_new(&rep, &cfg.derp);
        if (rc == 0) {
            qx_derp_report_set_meta(rep, "candidate_error", why);
            qx_derp_report_add_check(rep, "candidate_loads", 0, 1, QX_DERP_GE, NULL);
        }
    } else {
        if (access(live, F_OK) == 0 && qx_ivf_load(live, &old) != 0)
            cli_log(prog, "qinx build: live index %s does not load (%s): gating without it", live,
                    qx_last_error());
        cli_progress_fn(prog, "DERP gate", 0.0);
        rc = qx_gate_evaluate(cand, old, data, NULL, n, &cfg, &rep, &passed);
        cli_progress_fn(prog, "DERP gate", 1.0);
        cli_progress_done(prog);
    }
    if (rc == 0) {
        qx_derp_report_set_meta(rep, "index", live);
        qx_derp_report_set_meta(rep, "train_sample", train_sample);
        qx_derp_report_set_meta(rep, "verdict", passed ? "published" : "rejected");
        rc = qx_gate_write_report(rep, report_path);
    }
    if (rc == 0 && passed) {
        if (rename(cand_path, live) != 0) {
            fprintf(stderr, "qinx build: cannot publish %s: %s\n", live, strerror(errno));
            rc = QX_EIO;
        } else if ((rc = qx_fsync_dir(live)) != 0) {
            fprintf(stderr, "qinx build: published %s, but %s\n", live, qx_last_error());
        }
    } else {
        unlink(cand_path);
    }
    if (rc == 0 && !prog->quiet) cli_print_report(rep, 0);
    size_t nwarn = rc == 0 ? qx_derp_report_num_warnings(rep) : 0;
    if (rc == 0)
        fprintf(stderr, "qinx build: DERP gate %s%s (%.1fs); report in %s\n",
                passed ? "PASSED: candidate published" : "FAILED: live index left unchanged",
                nwarn ? ", with warnings" : "", cli_now() - t0, report_path);
    for (size_t i = 0; rc == 0 && nwarn && i < qx_derp_report_num_checks(rep); i++) {
        const char *name = NULL;
        if (qx_derp_report_check_outcome(rep, i, &name) == 1)
            fprintf(stderr, "qinx build: DERP gate WARNING: %s failed (policy warn)\n", name);
    }
    qx_derp_report_free(rep);
    qx_ivf_free(cand);
    qx_ivf_free(old);
    if (rc) return rc == QX_EIO ? 1 : cli_fail("build", rc);
    return passed ? 0 : 3;
}

/* A QINCo build says whether the network beat its RQ on the hold-out, and
 * whether the index therefore holds the RQ's codes. Printed even with --quiet
 * when it fell back: the user asked for QINCo and did not get it. */
static void cli_qinco_verdict(const qx_ivf *ivf, const cli_progress *prog) {
    const qx_quantizer *q = qx_ivf_quantizer(ivf);
    qx_qinco_stats st;
    if (qx_quantizer_kind(q) != QX_QUANT_QINCO || qx_qinco_get_stats(q, &st) || !st.checked) return;
    if (st.fallback)
        fprintf(stderr, "qinx build: QINCo did NOT beat its RQ on %zu held-out vectors (MSE %.6g vs "
                "RQ %.6g, recall@1 %.4f vs RQ %.4f): the index holds the RQ's codes "
                "(`qinx info` reports the fallback)\n", st.check_nq, st.check_mse_qinco,
                st.check_mse_rq, st.check_recall_qinco, st.check_recall_rq);
    else
        cli_log(prog, "qinx build: QINCo beat its RQ on %zu held-out vectors: MSE %.6g vs RQ %.6g "
                "(%.3fx), recall@1 %.4f vs RQ %.4f", st.check_nq, st.check_mse_qinco,
                st.check_mse_rq, st.check_mse_qinco / st.check_mse_rq, st.check_recall_qinco,
                st.check_recall_rq);
}

int cli_build_parse(int argc, char **argv, cli_build_cfg *c) {
    memset(c, 0, sizeof *c);
    c->bytes = 16, c->nlist = 1024, c->seed = 1234, c->max_train = 100000;
    c->train_sample = "random";
    c->metric = QX_METRIC_L2;
    /* qinco: the library's defaults (the help text quotes them); epochs
     * SIZE_MAX = not given: 30, or with --train-minutes as many as the budget
     * allows */
    qx_qinco_opts qdef;
    qx_qinco_opts_init(&qdef);
    c->qL = (size_t)qdef.L, c->qh = (size_t)qdef.h, c->qA = (size_t)qdef.A, c->epochs = SIZE_MAX;
    c->qctx = qdef.context;
    static const struct option opts[] = {
        {"base", 1, 0, 'b'},    {"train", 1, 0, 't'}, {"out", 1, 0, 'o'},   {"bytes", 1, 0, 'B'},
        {"nlist", 1, 0, 'n'},   {"beam", 1, 0, 'w'},  {"seed", 1, 0, 's'},  {"threads", 1, 0, 'T'},
        {"quiet", 0, 0, 'q'},   {"metric", 1, 0, 'm'}, {"max-train", 1, 0, 'x'}, {"help", 0, 0, 'h'},
        {"train-beam", 1, 0, 'b' + 256}, {"quantizer", 1, 0, 'Q'}, {"qinco-L", 1, 0, 'L'}, {"qinco-h", 1, 0, 'H'},
        {"qinco-A", 1, 0, 'A'}, {"epochs", 1, 0, 'E'}, {"train-minutes", 1, 0, 'M'},
        {"fs-steps", 1, 0, 'S'}, {"replace", 1, 0, 'R'}, {"gate", 1, 0, 'g'},
#ifdef QX_FAULT_INJECTION
        {"inject-fault", 1, 0, 'F'},
#endif
        {"train-sample", 1, 0, 'S' + 256}, {"mpi", 0, 0, 'P'}, {"merge", 0, 0, 'P' + 256},
        {"fs-shape", 1, 0, 'S' + 512}, {"qinco-context", 1, 0, 'A' + 256},
        {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'b': c->base = optarg; break;
        case 't': c->train = optarg; break;
        case 'o': c->out = optarg; break;
        case 'B': bad = cli_parse_size("--bytes", optarg, 2, QX_MAX_STEPS + 1, &c->bytes); break;
        case 'n': bad = cli_parse_size("--nlist", optarg, 1, QX_MAX_NLIST, &c->nlist); break;
        case 'w': bad = cli_parse_size("--beam", optarg, 1, 64, &c->beam); break;
        case 's': bad = cli_parse_size("--seed", optarg, 0, SIZE_MAX, &c->seed); break;
        case 'T': bad = cli_parse_size("--threads", optarg, 1, 256, &c->threads); break;
        case 'x': bad = cli_parse_size("--max-train", optarg, 256, SIZE_MAX, &c->max_train); break;
        case 'q': c->quiet = 1; break;
        case 'P': c->mpi = 1; break;
        case 'P' + 256: c->merge = 1; break;
        case 'Q':
            c->use_qinco = c->use_fs = 0;
            if (!strcmp(optarg, "rq")) c->use_qinco = 0;
            else if (!strcmp(optarg, "qinco")) c->use_qinco = 1;
            else if (!strcmp(optarg, "fastscan")) c->use_fs = 1;
            else { fprintf(stderr, "qinx build: --quantizer is rq, qinco or fastscan, got '%s'\n", optarg); bad = 1; }
            break;
        case 'b' + 256: bad = cli_parse_size("--train-beam", optarg, 1, 64, &c->train_beam); break;
        case 'S': bad = cli_parse_size("--fs-steps", optarg, 2, QX_FS_MAX_STEPS4, &c->fs_steps); break;
        case 'L': bad = cli_parse_size("--qinco-L", optarg, 0, 16, &c->qL); break;
        case 'H': bad = cli_parse_size("--qinco-h", optarg, 1, 4096, &c->qh); break;
        case 'A': bad = cli_parse_size("--qinco-A", optarg, 1, 256, &c->qA); break;
        case 'A' + 256:
            if (!strcmp(optarg, "on")) c->qctx = 1;
            else if (!strcmp(optarg, "off")) c->qctx = 0;
            else { fprintf(stderr, "qinx build: --qinco-context is on or off, got '%s'\n", optarg); bad = 1; }
            break;
        case 'E': bad = cli_parse_size("--epochs", optarg, 0, 100000, &c->epochs); break;
        case 'M': bad = cli_parse_size("--train-minutes", optarg, 1, 100000, &c->train_minutes); break;
        case 'S' + 512:
            if (!strcmp(optarg, "residual")) c->fs_product = 0;
            else if (!strcmp(optarg, "product")) c->fs_product = 1;
            else { fprintf(stderr, "qinx build: --fs-shape is residual or product, got '%s'\n", optarg); bad = 1; }
            break;
        case 'S' + 256:
            c->train_sample = optarg;
            if (strcmp(optarg, "random") && strcmp(optarg, "strided") && strcmp(optarg, "first")) {
                fprintf(stderr, "qinx build: --train-sample is random, strided or first\n");
                bad = 1;
            }
            break;
        case 'R': c->replace = optarg; break;
        case 'g': c->gate = optarg; break;
#ifdef QX_FAULT_INJECTION
        case 'F':
            c->fault = optarg;
            if (strcmp(optarg, "collapse") && strcmp(optarg, "corrupt") && strcmp(optarg, "mismatch")) {
                fprintf(stderr, "qinx build: --inject-fault is collapse, mismatch or corrupt\n");
                bad = 1;
            }
            break;
#endif
        case 'm':
            if (!strcmp(optarg, "l2")) c->metric = QX_METRIC_L2;
            else if (!strcmp(optarg, "ip")) c->metric = QX_METRIC_IP;
            else { fprintf(stderr, "qinx build: --metric is l2 or ip, got '%s'\n", optarg); bad = 1; }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) return 2;
    }
    if (c->replace && c->out) {
        fprintf(stderr, "qinx build: give --out or --replace, not both\n");
        return 2;
    }
    if ((c->gate || c->fault) && !c->replace) {
        fprintf(stderr, "qinx build: --gate and --inject-fault go with --replace\n");
        return 2;
    }
    if (c->mpi && c->replace) {
        fprintf(stderr, "qinx build: --mpi writes a new index (--out); a gated --replace runs on one machine\n");
        return 2;
    }
    if (c->merge && !c->mpi) {
        fprintf(stderr, "qinx build: --merge goes with --mpi\n");
        return 2;
    }
    if (!c->base || (!c->out && !c->replace) || optind < argc) {
        fprintf(stderr, "qinx build: --base and --out (or --replace) are required\n");
        usage(stderr);
        return 2;
    }
    size_t M = c->metric == QX_METRIC_L2 ? c->bytes - 1 : c->bytes;
    size_t m4 = c->fs_steps ? c->fs_steps : (c->bytes / 2) * 2;
    if (c->use_fs && (m4 % 2 || m4 / 2 > M)) {
        fprintf(stderr, "qinx build: --fs-steps %zu must be even and fit in %zu code bytes\n", m4, M);
        return 2;
    }
    if (c->threads) {
        char buf[24];
        snprintf(buf, sizeof buf, "%zu", c->threads);
        setenv("QX_THREADS", buf, 1);
        setenv("OMP_NUM_THREADS", buf, 1);
        /* OpenBLAS sized its pool when the program loaded (from the CPUs it
         * may run on): without this, --threads 1 still ran sgemm on every
         * core, and the codes differed between a pinned and an unpinned run */
        openblas_set_num_threads((int)c->threads);
        omp_set_num_threads((int)c->threads);
    }
    return -1;
}

void cli_build_describe(const cli_build_cfg *c, char *buf, size_t cap) {
    snprintf(buf, cap,
             "--base %s\n--train %s\n--out %s\n--bytes %zu\n--nlist %zu\n--beam %zu\n--train-beam %zu\n"
             "--seed %zu\n--max-train %zu\n--train-sample %s\n--quantizer %s\n--fs-steps %zu\n--fs-shape %s\n"
             "--qinco-L %zu\n--qinco-h %zu\n--qinco-A %zu\n--qinco-context %s\n--epochs %zu\n"
             "--train-minutes %zu\n--metric %s\n--merge %d\n",
             c->base, c->train ? c->train : "(sample)", c->out, c->bytes, c->nlist, c->beam,
             c->train_beam, c->seed, c->max_train, c->train_sample,
             c->use_fs ? "fastscan" : c->use_qinco ? "qinco" : "rq", c->fs_steps,
             c->fs_product ? "product" : "residual", c->qL, c->qh, c->qA, c->qctx ? "on" : "off",
             c->epochs, c->train_minutes, c->metric == QX_METRIC_L2 ? "l2" : "ip", c->merge);
}

/* Read the training set (--train, or the sample rows of the base), apply a
 * planted fault if asked, and train a new index on it. */
static int train_index(const cli_build_cfg *c, qx_vecs_file *base, qx_ivf **out, char *desc,
                       size_t cap, cli_progress *prog) {
    size_t n = qx_vecs_file_rows(base), d = qx_vecs_file_dim(base);
    qx_matrix train = {0};
    int rc, whole = 0;
    if (c->train) {
        if ((rc = qx_vecs_read(c->train, 0, &train))) return cli_fail("build", rc);
        if (train.d != d) {
            fprintf(stderr, "qinx build: --train has dimension %zu, --base has %zu\n", train.d, d);
            qx_matrix_free(&train);
            return 1;
        }
        snprintf(desc, cap, "--train %s: %zu vectors", c->train, train.n);
    } else {
        size_t *rows = NULL, nt = 0;
        rc = cli_train_rows(c, n, &rows, &nt, &whole, desc, cap);
        if (rc == 0) rc = qx_matrix_alloc(&train, nt, d);
        if (rc == 0) rc = qx_vecs_read_picked(base, rows, nt, train.data);
        free(rows);
        if (rc) {
            qx_matrix_free(&train);
            return cli_fail("build", rc);
        }
    }
    cli_log(prog, "qinx build: training sample: %s", desc);
#ifdef QX_FAULT_INJECTION
    if (c->fault && !strcmp(c->fault, "mismatch")) mismatch_training(&train);
#endif
    cli_log(prog, "qinx build: %zu base vectors, %zu training vectors, d=%zu, %zu bytes/vector", n,
            train.n, d, c->bytes);
    qx_ivf *ivf = NULL;
    rc = cli_build_new_index(c, d, whole, &ivf);
    if (rc == 0) {
        qx_ivf_set_progress(ivf, cli_progress_fn, prog);
        rc = qx_ivf_train(ivf, train.data, train.n);
    }
#ifdef QX_FAULT_INJECTION
    if (rc == 0 && c->fault && !strcmp(c->fault, "collapse")) rc = cli_collapse_codebooks(ivf);
#endif
    qx_matrix_free(&train);
    cli_progress_done(prog);
    if (rc) {
        qx_ivf_free(ivf);
        return cli_fail("build", rc);
    }
    *out = ivf;
    return 0;
}

/* Train, then encode the base by chunks into the index: the whole
 * one-machine build. Exit status (0 ok). */
static int build_index(const cli_build_cfg *c, qx_ivf **out, cli_row_locator **rl, char *desc, size_t cap,
                       cli_progress *prog, double *t_train) {
    *rl = NULL;
    double t0 = cli_now();
    qx_vecs_file *base = NULL;
    int rc = qx_vecs_open(&base, c->base);
    if (rc) return cli_fail("build", rc);
    qx_ivf *ivf = NULL;
    int st = train_index(c, base, &ivf, desc, cap, prog);
    *t_train = cli_now() - t0;
    if (st == 0) {
        size_t n = qx_vecs_file_rows(base);
        cli_rows_progress rp;
        cli_rows_progress_init(&rp, prog, n);
        rc = cli_encode_rows(ivf, base, 0, n, (n + CLI_BUILD_CHUNK - 1) / CLI_BUILD_CHUNK, NULL, &rp, rl);
        if (rc == 0) rc = qx_vecs_file_unchanged(base);
        if (rc) st = cli_fail("build", rc);
    }
    qx_vecs_close(base);
    if (st) {
        qx_ivf_free(ivf);
        cli_row_locator_free(*rl);
        *rl = NULL;
        return st;
    }
    *out = ivf;
    return 0;
}

int qx_cli_build(int argc, char **argv) {
    cli_build_cfg cfg;
    int st = cli_build_parse(argc, argv, &cfg);
    if (st >= 0) return st;
    if (cfg.mpi) return cli_build_mpi(&cfg);
    cli_progress prog;
    cli_progress_init(&prog, cfg.quiet);
    double t0 = cli_now(), t_train = 0;
    char desc[4096 + 128];
    qx_ivf *ivf = NULL;
    cli_row_locator *rl = NULL; /* the index's id map: freed after it */
    if ((st = build_index(&cfg, &ivf, &rl, desc, sizeof desc, &prog, &t_train))) return st;
    int rc = 0;
    if (cfg.replace) {
        /* the gate measures drift and recall on the data: read it whole */
        qx_matrix base = {0};
        rc = qx_vecs_read(cfg.base, 0, &base);
        if (rc == 0)
            st = cli_gated_publish(ivf, base.data, base.n, cfg.replace, cfg.gate, cfg.fault, desc, &prog);
        qx_matrix_free(&base);
        qx_ivf_free(ivf);
        cli_row_locator_free(rl);
        return rc ? cli_fail("build", rc) : st;
    }
    cli_qinco_verdict(ivf, &prog);
    rc = qx_ivf_save(ivf, cfg.out);
    if (rc == 0) {
        qx_ivf_info info;
        qx_ivf_get_info(ivf, &info);
        cli_log(&prog,
                "qinx build: wrote %s: %zu vectors, nlist=%zu, %zu bytes/vector (M=%zu), "
                "train %.1fs, total %.1fs",
                cfg.out, info.ntotal, info.nlist, info.code_size, info.M, t_train, cli_now() - t0);
    }
    qx_ivf_free(ivf);
    cli_row_locator_free(rl);
    return rc ? cli_fail("build", rc) : 0;
}

#ifndef QX_HAVE_MPI
int cli_build_mpi(const cli_build_cfg *c) {
    (void)c;
    fprintf(stderr, "qinx build: --mpi needs the qinx-mpi program (built beside qinx when Open MPI "
                    "is installed): mpirun -n P qinx-mpi build --mpi ...\n");
    return 2;
}
#endif
