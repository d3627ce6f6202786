/* tools/build_stream.c — the out-of-core parts of `qinx build`: which rows
 * form the training sample, the index the options describe, and encoding
 * the base chunk by chunk with a rows/ETA progress line. Shared by the
 * one-machine build (cli_build.c) and the MPI build (tools/mpi/).
 *
 * Decisions:
 * 1. The random sample is drawn as rows, not copied vectors: selection
 *    sampling (Knuth, TAOCP vol. 2, 3.4.2, Algorithm S) takes row i with
 *    probability (rows still needed) / (rows left), one generator draw per
 *    row visited, so the rows depend only on n, m and the seed. Every MPI
 *    rank computes the same list and reads the rows that fall in its range.
 * 2. Rows are encoded CLI_BUILD_CHUNK (65536) at a time: a multiple of the
 *    16384-row batches of qx_ivf_add, so the index is byte for byte the one
 *    an in-memory build of the same file writes (tests/test_build_stream.sh).
 * 3. Memory: the sample (m x d floats) is freed before encoding starts; then
 *    the codes and ids, plus one chunk (65536 x d floats, 32 MB at d = 128).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build.h"
#include "qinx/rng.h"

int cli_train_rows(const cli_build_cfg *c, size_t n, size_t **rows_out, size_t *nt_out, int *whole,
                   char *desc, size_t cap) {
    size_t m = n < c->max_train ? n : c->max_train;
    size_t *rows = malloc(sizeof(size_t) * (m ? m : 1));
    if (!rows) return qx_error_set(QX_ENOMEM, "training sample of %zu rows", m);
    *whole = m == n;
    if (m == n) {
        for (size_t i = 0; i < m; i++) rows[i] = i;
        snprintf(desc, cap, "all %zu base vectors", m);
    } else if (!strcmp(c->train_sample, "random")) {
        uint64_t st = (uint64_t)c->seed ^ 0x7A3D5EEDull;
        size_t got = 0;
        for (size_t i = 0; i < n && got < m; i++)
            if ((double)(n - i) * qx_rng_uniform(&st) < (double)(m - got)) rows[got++] = i;
        snprintf(desc, cap, "random: %zu of %zu base vectors, uniform over the whole file (seed %zu)", m, n,
                 c->seed);
    } else if (!strcmp(c->train_sample, "strided")) {
        for (size_t i = 0; i < m; i++) rows[i] = qx_sample_index(i, n, m);
        snprintf(desc, cap, "strided: %zu of %zu base vectors, evenly spaced rows", m, n);
    } else {
        for (size_t i = 0; i < m; i++) rows[i] = i;
        snprintf(desc, cap, "first: the first %zu of %zu base vectors (file order)", m, n);
    }
    *rows_out = rows;
    *nt_out = m;
    return 0;
}

int cli_build_new_index(const cli_build_cfg *c, size_t d, int trained_on_base, qx_ivf **out) {
    size_t M = c->metric == QX_METRIC_L2 ? c->bytes - 1 : c->bytes;
    qx_quantizer *q = NULL;
    int rc;
    if (c->use_fs) {
        /* bytes = M4/2 (4-bit) + M8 (8-bit) + the norm byte (L2) */
        qx_fs_opts fo;
        qx_fs_opts_init(&fo);
        fo.M4 = c->fs_steps ? c->fs_steps : (c->bytes / 2) * 2;
        fo.product4 = c->fs_product;
        fo.M8 = M - fo.M4 / 2;
        if (c->beam) fo.beam = (int)c->beam;
        fo.train_beam = c->train_beam ? (int)c->train_beam : 0;
        fo.seed = c->seed;
        fo.threads = (int)c->threads;
        rc = qx_fs_new(&q, d, &fo);
    } else if (c->use_qinco) {
        qx_qinco_opts qo, qdef;
        qx_qinco_opts_init(&qo);
        qx_qinco_opts_init(&qdef);
        qo.M = M;
        qo.L = (int)c->qL;
        qo.h = (int)c->qh;
        qo.A = (int)c->qA;
        if (c->beam) qo.beam = (int)c->beam;
        qo.epochs = c->epochs != SIZE_MAX ? (int)c->epochs : c->train_minutes ? QX_QINCO_MAX_EPOCHS : qdef.epochs;
        qo.train_minutes = (double)c->train_minutes;
        qo.seed = c->seed;
        qo.threads = (int)c->threads;
        qo.verbose = !c->quiet;
        if (c->beam) qo.rq_beam = (int)c->beam; /* the RQ it starts from, and falls back to, is
                                                   the one --quantizer rq would train */
        if (trained_on_base) qo.rq_refine_min = 0; /* as for rq, below */
        rc = qx_qinco_new(&q, d, &qo);
    } else {
        qx_rq_opts ro;
        qx_rq_opts_init(&ro);
        ro.M = M;
        if (c->beam) ro.beam = (int)c->beam;
        ro.train_beam = c->train_beam ? (int)c->train_beam : ro.beam;
        ro.seed = c->seed;
        ro.threads = (int)c->threads;
        /* trained on every base vector: fitting them is what the codes are
         * for, so refinement runs whatever the vectors per codeword (rq.h) */
        if (trained_on_base) ro.refine_min_per_codeword = 0;
        rc = qx_rq_new(&q, d, &ro);
    }
    if (rc) return rc;
    qx_ivf_opts io;
    qx_ivf_opts_init(&io);
    io.nlist = c->nlist;
    io.metric = c->metric;
    io.seed = c->seed;
    return qx_ivf_new(out, d, q, &io);
}

int cli_encode_rows(qx_ivf *ivf, qx_vecs_file *f, size_t begin, size_t end, size_t nchunks,
                    cli_rows_fn report, void *ctx) {
    size_t d = qx_vecs_file_dim(f), chunk = CLI_BUILD_CHUNK;
    qx_matrix x = {0};
    int64_t *ids = malloc(sizeof(int64_t) * chunk);
    int rc = ids ? qx_matrix_alloc(&x, chunk, d) : qx_error_set(QX_ENOMEM, "encode buffers");
    /* The progress line (or, under MPI, the per-chunk exchange) runs on every
     * one of nchunks iterations, even past this caller's rows or after a
     * failure, so that every rank takes part in as many exchanges. */
    qx_ivf_set_progress(ivf, NULL, NULL);
    for (size_t k = 0; k < nchunks; k++) {
        size_t i0 = begin + k * chunk;
        size_t b = rc || i0 >= end ? 0 : (end - i0 < chunk ? end - i0 : chunk);
        for (size_t i = 0; i < b; i++) ids[i] = (int64_t)(i0 + i);
        if (b && (rc = qx_vecs_read_rows(f, i0, b, x.data)) == 0) rc = qx_ivf_add(ivf, x.data, ids, b);
        size_t done = rc ? 0 : i0 - begin + b;
        if (report) {
            int r = report(ctx, done, rc != 0);
            if (r && !rc) rc = r;
        } else if (!rc) {
            cli_rows_progress_show(ctx, done);
        }
    }
    qx_matrix_free(&x);
    free(ids);
    return rc;
}

void cli_rows_progress_init(cli_rows_progress *rp, const cli_progress *prog, size_t total) {
    memset(rp, 0, sizeof *rp);
    rp->prog = prog;
    rp->total = total;
    rp->t0 = rp->last_t = cli_now();
    rp->last_decile = -1;
}

void cli_rows_progress_show(cli_rows_progress *rp, size_t done) {
    if (rp->prog->quiet || !rp->total) return;
    double t = cli_now(), el = t - rp->t0, rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (rp->total - done) / rate : 0;
    int decile = (int)(10.0 * done / rp->total);
    if (rp->prog->tty) {
        if (t - rp->last_t < 0.1 && done < rp->total) return;
        fprintf(stderr, "\r[encode] %zu / %zu rows (%5.1f%%), %.0f rows/s, ETA %.0fs   ", done, rp->total,
                100.0 * done / rp->total, rate, eta);
        if (done >= rp->total) fputc('\n', stderr);
        fflush(stderr);
    } else if (decile != rp->last_decile) {
        fprintf(stderr, "[encode] %zu / %zu rows (%.0f%%), %.0f rows/s, ETA %.0fs\n", done, rp->total,
                100.0 * done / rp->total, rate, eta);
        rp->last_decile = decile;
    }
    rp->last_t = t;
}
