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
 *    A vector's code can depend on its batch (the rounding of the batch's
 *    matrix products: 2 of 10M rows differed at P = 4 when ranks encoded
 *    from their own first row), so a range [begin, end) is encoded in the
 *    batches of the whole file, [begin rounded down, end rounded up to a
 *    batch), and only its own rows are added: at most two batches of extra
 *    work a range.
 * 3. Memory: the sample (m x d floats) is freed before encoding starts; then
 *    the codes and ids, plus one chunk (65536 x d floats, 32 MB at d = 128).
 * 4. The ids are the rows [begin, end), so the id -> location map is an
 *    array of 8 bytes a row (cli_row_locator, through qx_ivf_set_locator)
 *    instead of the index's hash map (about 17 bytes a slot at load <= 1/2:
 *    34-68 bytes a row, 1.1 GB at 20M rows, three times the 16-byte codes).
 *    The index file is the same: the map is not stored, a load rebuilds it.
 *    Then the lists' growth slack (up to a quarter) is given back before the
 *    index is written (qx_ivf_trim), which does not change the file either.
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
        qo.context = c->qctx;
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

/* ---- the row locator (decision 4) ---- */
#define ROW_ABSENT UINT64_MAX

static int rl_get(void *ctx, int64_t id, uint64_t *loc) {
    const cli_row_locator *r = ctx;
    if (id < 0 || (uint64_t)id < r->lo || (uint64_t)id - r->lo >= r->n || r->loc[id - (int64_t)r->lo] == ROW_ABSENT)
        return 0;
    *loc = r->loc[id - (int64_t)r->lo];
    return 1;
}

static int rl_put(void *ctx, int64_t id, uint64_t loc) {
    cli_row_locator *r = ctx;
    if (id < 0 || (uint64_t)id < r->lo || (uint64_t)id - r->lo >= r->n)
        return qx_error_set(QX_EINVAL, "row locator: id %lld outside rows [%zu, %zu)", (long long)id, r->lo,
                            r->lo + r->n);
    r->loc[id - (int64_t)r->lo] = loc;
    return 0;
}

static void rl_del(void *ctx, int64_t id) {
    cli_row_locator *r = ctx;
    if (id >= 0 && (uint64_t)id >= r->lo && (uint64_t)id - r->lo < r->n) r->loc[id - (int64_t)r->lo] = ROW_ABSENT;
}

void cli_row_locator_free(cli_row_locator *r) {
    if (!r) return;
    free(r->loc);
    free(r);
}

void cli_encode_span(size_t begin, size_t end, size_t n, size_t *a0, size_t *a1) {
    *a0 = begin - begin % QX_IVF_ADD_BATCH;
    size_t up = end % QX_IVF_ADD_BATCH ? end + (QX_IVF_ADD_BATCH - end % QX_IVF_ADD_BATCH) : end;
    *a1 = up < n ? up : n;
}

int cli_encode_rows(qx_ivf *ivf, qx_vecs_file *f, size_t begin, size_t end, size_t nchunks,
                    cli_rows_fn report, void *ctx, cli_row_locator **locator) {
    size_t d = qx_vecs_file_dim(f), chunk = CLI_BUILD_CHUNK, cs, a0, a1;
    qx_ivf_info info;
    qx_ivf_get_info(ivf, &info);
    cs = info.code_size;
    cli_encode_span(begin, end, qx_vecs_file_rows(f), &a0, &a1);
    qx_matrix x = {0};
    int64_t *ids = malloc(sizeof(int64_t) * chunk);
    uint32_t *lists = malloc(sizeof(uint32_t) * chunk);
    uint8_t *codes = malloc(chunk * (cs ? cs : 1));
    int rc = ids && lists && codes ? qx_matrix_alloc(&x, chunk, d) : qx_error_set(QX_ENOMEM, "encode buffers");
    cli_row_locator *rl = rc ? NULL : calloc(1, sizeof *rl);
    if (rc == 0 && rl && end > begin && (rl->loc = malloc(sizeof(uint64_t) * (end - begin)))) {
        rl->lo = begin, rl->n = end - begin;
        memset(rl->loc, 0xff, sizeof(uint64_t) * rl->n); /* ROW_ABSENT */
        qx_ivf_locator L = {rl_get, rl_put, rl_del, rl};
        rc = qx_ivf_set_locator(ivf, &L);
    } else if (rc == 0 && end > begin) {
        rc = qx_error_set(QX_ENOMEM, "row locator of %zu rows", end - begin);
    }
    *locator = rl; /* the caller frees it after the index (cli_row_locator_free) */
    /* The progress line (or, under MPI, the per-chunk exchange) runs on every
     * one of nchunks iterations, even past this caller's rows or after a
     * failure, so that every rank takes part in as many exchanges.
     * Chunks start at a0, a multiple of the index's add batch, and are read
     * whole up to a1: every batch is the one-process build's batch (decision
     * 2), and only the rows in [begin, end) are added. */
    qx_ivf_set_progress(ivf, NULL, NULL);
    for (size_t k = 0; k < nchunks; k++) {
        size_t i0 = a0 + k * chunk;
        size_t b = rc || i0 >= a1 ? 0 : (a1 - i0 < chunk ? a1 - i0 : chunk);
        if (b && (rc = qx_vecs_read_rows(f, i0, b, x.data)) == 0) rc = qx_ivf_encode(ivf, x.data, b, lists, codes);
        size_t lo = i0 > begin ? i0 : begin, hi = i0 + b < end ? i0 + b : end;
        if (b && rc == 0 && hi > lo) {
            for (size_t i = lo; i < hi; i++) ids[i - lo] = (int64_t)i;
            rc = qx_ivf_add_entries(ivf, lists + (lo - i0), codes + (lo - i0) * cs, ids, hi - lo);
        }
        size_t done = rc || hi <= begin ? 0 : hi - begin;
        if (report) {
            int r = report(ctx, done, rc != 0);
            if (r && !rc) rc = r;
        } else if (!rc) {
            cli_rows_progress_show(ctx, done);
        }
    }
    qx_matrix_free(&x);
    free(ids);
    free(lists);
    free(codes);
    if (rc == 0) rc = qx_ivf_trim(ivf);
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
