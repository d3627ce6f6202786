/* tools/build.h — the pieces of `qinx build` shared by the one-machine
 * streaming build (cli_build.c, build_stream.c) and the Open MPI build
 * (tools/mpi/, the qinx-mpi program). */
#ifndef QINX_CLI_BUILD_H
#define QINX_CLI_BUILD_H

#include "cli.h"

/* Every option of `qinx build`, parsed. */
typedef struct cli_build_cfg {
    const char *base, *train, *out, *replace, *gate, *fault;
    const char *train_sample; /* random | strided | first */
    size_t bytes, nlist, beam, train_beam, seed, threads, max_train;
    size_t qL, qh, qA, epochs, train_minutes, fs_steps;
    int use_qinco, use_fs, fs_product, quiet, mpi, merge;
    int qctx; /* --qinco-context: the networks see each vector's list centroid */
    qx_metric metric;
} cli_build_cfg;

/* Rows encoded per read of the base: a multiple of qx_ivf_add's internal
 * chunk (16384), so a streamed build encodes exactly the batches an
 * in-memory one does. */
#define CLI_BUILD_CHUNK ((size_t)65536)

/* Parse argv into cfg: -1 on success, else the exit status to return. */
int cli_build_parse(int argc, char **argv, cli_build_cfg *cfg);

/* The options that decide the index's bytes, one per line ("--bytes 16"):
 * what MPI ranks compare before they start. */
void cli_build_describe(const cli_build_cfg *c, char *buf, size_t cap);

/* Rows of an n-row base forming the training sample (ascending, *rows
 * caller-freed with free()); desc receives the one-line description the
 * build prints. *whole is set when the sample is every row. */
int cli_train_rows(const cli_build_cfg *c, size_t n, size_t **rows, size_t *nt, int *whole,
                   char *desc, size_t cap);

/* A new untrained index for dimension d (trained_on_base: the training set
 * is the whole base, which lets RQ refine its codebooks whatever the ratio). */
int cli_build_new_index(const cli_build_cfg *c, size_t d, int trained_on_base, qx_ivf **out);

/* Encode rows [begin, end) of f into ivf (ids = row numbers), CLI_BUILD_CHUNK
 * rows at a time. report(ctx, rows_done) after each chunk may return nonzero
 * to stop (then QX_ECANCELED... or its own code is returned). */
typedef int (*cli_rows_fn)(void *ctx, size_t rows_done, int failed);
/* *locator: the id -> location map the index uses from now on (8 bytes a
 * row, build_stream.c decision 4); free it with cli_row_locator_free after
 * the index (even on failure; NULL-safe). */
typedef struct cli_row_locator {
    size_t lo, n;
    uint64_t *loc;
} cli_row_locator;
int cli_encode_rows(qx_ivf *ivf, qx_vecs_file *f, size_t begin, size_t end, size_t nchunks,
                    cli_rows_fn report, void *ctx, cli_row_locator **locator);
/* The rows [*a0, *a1) of an n-row base that encoding [begin, end) reads: the
 * whole add batches (QX_IVF_ADD_BATCH) of the file that hold its rows
 * (build_stream.c decision 2). nchunks for cli_encode_rows is
 * ceil((a1 - a0) / CLI_BUILD_CHUNK). */
void cli_encode_span(size_t begin, size_t end, size_t n, size_t *a0, size_t *a1);
void cli_row_locator_free(cli_row_locator *r);

/* "rows encoded" progress with rate and ETA: redrawn on a tty, a line every
 * 10% otherwise. */
typedef struct cli_rows_progress {
    const cli_progress *prog;
    size_t total;
    double t0, last_t;
    int last_decile;
} cli_rows_progress;
void cli_rows_progress_init(cli_rows_progress *rp, const cli_progress *prog, size_t total);
void cli_rows_progress_show(cli_rows_progress *rp, size_t done);

/* The one-machine out-of-core build (build_stream.c): returns the exit status. */
int cli_build_stream(const cli_build_cfg *c);

/* The distributed build (tools/mpi/build_mpi.c, only in qinx-mpi). */
int cli_build_mpi(const cli_build_cfg *c);

#endif
