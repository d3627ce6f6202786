/* tools/mpi/build_mpi.c — `mpirun -n P qinx-mpi build --mpi …`: the
 * distributed build over Open MPI (issue 24).
 *
 * Every rank reads its own row range [n·r/P, n·(r+1)/P) of the base by
 * pread; nothing else of the base crosses the network.
 *
 * 1. Agreement first. Each rank sends rank 0 the options that decide the
 *    index's bytes and the identity of the base it opened (rows, dimension,
 *    size, mtime). One difference fails the whole job, naming the rank and
 *    the option (or the file's size/mtime), before any work is done.
 * 2. Training: rank 0 trains on the gathered sample and broadcasts the
 *    model. Every rank computes the same sample rows (seeded selection
 *    sampling over n) and reads those in its range; MPI_Gatherv hands rank 0
 *    exactly the sample a one-process build reads, so the model — and every
 *    code — is bit for bit the single-process build's at any P. The
 *    alternative, k-means with an MPI_Allreduce of centroid sums per
 *    iteration, would spread the training compute but not reproduce the
 *    single build, and it costs more traffic than it saves at qinx's sizes:
 *    docs/distributed.md gives the arithmetic.
 * 3. The model travels as the bytes of an index file with no entries: rank 0
 *    saves it, broadcasts it, and every rank (rank 0 too) loads it from
 *    memory (a memfd), so all ranks encode with the same loaded model.
 * 4. Encoding: CLI_BUILD_CHUNK rows at a time; after each chunk one
 *    MPI_Allreduce of (rows done, failed) gives rank 0 the progress across
 *    ranks and stops every rank at the next chunk when one has failed.
 * 5. Commit: each rank writes its shard to OUT.<tag>.shard-r-of-P.tmp and
 *    its CRC; when every rank has written, all rename; then rank 0 writes
 *    the manifest at OUT (atomic rename): that rename is the commit point.
 *    A failure before it removes the new shards everywhere; a rank that
 *    dies takes the job down (mpirun kills the others), leaving only *.tmp
 *    files that the next run removes. <tag> is new per run, so the shards of
 *    a manifest already at OUT are never overwritten; they are deleted
 *    after the new manifest is in place.
 * 6. Time spent inside MPI calls (transfers and waiting for other ranks) is
 *    measured per rank and reported with the bytes moved: the
 *    communication share of the build.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "build.h"

#define MSG_CAP 1024
#define DESC_CAP 8192

typedef struct mpi_ctx {
    int rank, P;
    double t_comm;      /* seconds inside MPI calls, transfers only */
    double t_wait;      /* seconds waiting for the other ranks to reach a call */
    double t_wait_cpu;  /* CPU seconds this rank used while waiting (near 0: it sleeps) */
    double bytes_moved; /* payload bytes sent by collective calls (as seen by this rank) */
    cli_progress prog;
    cli_rows_progress rp;
} mpi_ctx;

/* Waiting for the other ranks, asleep. Open MPI's blocking calls busy-poll:
 * a rank waiting minutes for rank 0's training would hold a core that rank
 * 0 (or anything else on the machine) needs. So the wait is a non-blocking
 * barrier tested between sleeps that grow from 50 us to 2 ms: at most ~2 ms
 * of latency per collective call, and no spinning. Its wall and CPU time are
 * counted as waiting. */
static void wait_for_ranks(mpi_ctx *mc) {
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    MPI_Request rq;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    long ns = 50000;
    for (int done = 0;;) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done) break;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 2000000) ns *= 2;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    mc->t_wait_cpu += (double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec);
}

/* Every collective call: the ranks meet first, timed as waiting (a rank
 * that is still training or encoding), then the call, timed as communication. */
static double comm_t0, comm_t1;
#define COMM(mc, call)                                                                     \
    (comm_t0 = MPI_Wtime(), wait_for_ranks(mc), comm_t1 = MPI_Wtime(), (call),             \
     (mc)->t_wait += comm_t1 - comm_t0, (mc)->t_comm += MPI_Wtime() - comm_t1)

/* Every rank passes its status (0 or an error) and message; rank 0 prints
 * the failing ranks' messages. Returns 0 if every rank succeeded, else 1 on
 * every rank. */
static int agree(mpi_ctx *mc, int rc, const char *what) {
    char msg[MSG_CAP] = "";
    if (rc) snprintf(msg, sizeof msg, "%s", qx_last_error()[0] ? qx_last_error() : qx_strerror(rc));
    int bad = rc != 0, anybad = 0;
    COMM(mc, MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (!anybad) return 0;
    char *all = mc->rank == 0 ? malloc((size_t)mc->P * MSG_CAP) : NULL;
    COMM(mc, MPI_Gather(msg, MSG_CAP, MPI_CHAR, all, MSG_CAP, MPI_CHAR, 0, MPI_COMM_WORLD));
    if (mc->rank == 0) {
        cli_progress_done(&mc->prog);
        for (int r = 0; all && r < mc->P; r++)
            if (all[(size_t)r * MSG_CAP])
                fprintf(stderr, "qinx build --mpi: rank %d failed while %s: %s\n", r, what, all + (size_t)r * MSG_CAP);
        fprintf(stderr, "qinx build --mpi: the job failed; no index was written\n");
    }
    free(all);
    return 1;
}

/* Ranks agree on the options and on the base file (rank 0 prints which
 * rank differs and how). 0, or the exit status. */
static int check_agreement(mpi_ctx *mc, const cli_build_cfg *c, qx_vecs_file *f, int open_rc) {
    char desc[DESC_CAP];
    cli_build_describe(c, desc, sizeof desc);
    char *all = mc->rank == 0 ? malloc((size_t)mc->P * DESC_CAP) : NULL;
    COMM(mc, MPI_Gather(desc, DESC_CAP, MPI_CHAR, all, DESC_CAP, MPI_CHAR, 0, MPI_COMM_WORLD));
    int verdict = 0;
    if (mc->rank == 0) {
        for (int r = 1; r < mc->P && !verdict; r++) {
            const char *a = all, *b = all + (size_t)r * DESC_CAP;
            if (!strcmp(a, b)) continue;
            /* the first line that differs */
            while (*a && *a == *b) a++, b++;
            while (a > all && a[-1] != '\n') a--, b--;
            fprintf(stderr, "qinx build --mpi: rank %d disagrees on parameters: it has '%.*s', rank 0 has '%.*s' "
                    "(every rank must run the same command)\n", r, (int)strcspn(b, "\n"), b, (int)strcspn(a, "\n"), a);
            verdict = 2;
        }
    }
    free(all);
    COMM(mc, MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (verdict) return verdict;
    if (agree(mc, open_rc, "opening the base")) return 1;
    /* the same file everywhere: rows, dimension, size and mtime */
    uint64_t id[4] = {qx_vecs_file_rows(f), qx_vecs_file_dim(f), 0, 0};
    qx_vecs_file_identity(f, &id[2], (int64_t *)&id[3]);
    uint64_t *ids = mc->rank == 0 ? malloc(sizeof(uint64_t) * 4 * (size_t)mc->P) : NULL;
    COMM(mc, MPI_Gather(id, 4, MPI_UINT64_T, ids, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    for (int r = 1; mc->rank == 0 && r < mc->P && !verdict; r++)
        if (memcmp(ids, ids + 4 * r, sizeof(uint64_t) * 4)) {
            fprintf(stderr, "qinx build --mpi: rank %d sees a different base file %s: %llu rows of d=%llu, %llu bytes, "
                    "mtime %lld ns; rank 0 sees %llu rows of d=%llu, %llu bytes, mtime %lld ns (every rank must "
                    "read the same file; copies must keep size and mtime, e.g. rsync -t)\n", r, c->base,
                    (unsigned long long)ids[4 * r], (unsigned long long)ids[4 * r + 1],
                    (unsigned long long)ids[4 * r + 2], (long long)ids[4 * r + 3], (unsigned long long)ids[0],
                    (unsigned long long)ids[1], (unsigned long long)ids[2], (long long)ids[3]);
            verdict = 1;
        }
    free(ids);
    COMM(mc, MPI_Bcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return verdict;
}

/* Rank 0 gets the training sample: each rank reads the sample rows of its
 * range, MPI_Gatherv in rank order = row order. */
static int gather_sample(mpi_ctx *mc, const cli_build_cfg *c, qx_vecs_file *f, size_t lo, size_t hi,
                         qx_matrix *train, int *whole, char *desc, size_t cap) {
    size_t n = qx_vecs_file_rows(f), d = qx_vecs_file_dim(f), *rows = NULL, nt = 0;
    int rc = cli_train_rows(c, n, &rows, &nt, whole, desc, cap);
    size_t a = 0, b = 0;
    while (rc == 0 && a < nt && rows[a] < lo) a++;
    for (b = a; rc == 0 && b < nt && rows[b] < hi;) b++;
    qx_matrix mine = {0};
    if (rc == 0) rc = qx_matrix_alloc(&mine, b - a ? b - a : 1, d);
    if (rc == 0) rc = qx_vecs_read_picked(f, rows + a, b - a, mine.data);
    if (rc == 0 && mc->rank == 0) rc = qx_matrix_alloc(train, nt, d);
    if (rc == 0 && nt > (size_t)INT32_MAX) rc = qx_error_set(QX_ELIMIT, "training sample of %zu rows: at most %d", nt, INT32_MAX);
    free(rows);
    if (agree(mc, rc, "reading the training sample")) {
        qx_matrix_free(&mine);
        qx_matrix_free(train);
        return 1;
    }
    MPI_Datatype row;
    MPI_Type_contiguous((int)d, MPI_FLOAT, &row);
    MPI_Type_commit(&row);
    int cnt = (int)(b - a), *counts = NULL, *displs = NULL;
    if (mc->rank == 0) {
        counts = malloc(sizeof(int) * (size_t)mc->P);
        displs = malloc(sizeof(int) * (size_t)mc->P);
    }
    COMM(mc, MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    for (int r = 0, off = 0; mc->rank == 0 && r < mc->P; off += counts[r], r++) displs[r] = off;
    COMM(mc, MPI_Gatherv(mine.data, cnt, row, mc->rank == 0 ? train->data : NULL, counts, displs, row, 0,
                         MPI_COMM_WORLD));
    mc->bytes_moved += (double)cnt * (double)d * 4;
    MPI_Type_free(&row);
    free(counts);
    free(displs);
    qx_matrix_free(&mine);
    return 0;
}

/* The trained model, as index-file bytes, from rank 0 to every rank; each
 * loads it (from a memfd) into *out. */
static int share_model(mpi_ctx *mc, const cli_build_cfg *c, qx_ivf *trained, int train_rc, qx_ivf **out) {
    uint8_t *bytes = NULL;
    uint64_t len = 0;
    int rc = train_rc;
    if (mc->rank == 0 && rc == 0) {
        char tmp[4096 + 64];
        snprintf(tmp, sizeof tmp, "%s.model.%d.tmp", c->out, (int)getpid());
        rc = qx_ivf_save(trained, tmp);
        FILE *fp = rc ? NULL : fopen(tmp, "rb");
        if (rc == 0 && !fp) rc = qx_error_set(QX_EIO, "cannot reopen %s: %s", tmp, strerror(errno));
        if (fp) {
            fseek(fp, 0, SEEK_END);
            len = (uint64_t)ftell(fp);
            fseek(fp, 0, SEEK_SET);
            bytes = malloc(len ? len : 1);
            if (!bytes || fread(bytes, 1, len, fp) != len) rc = qx_error_set(QX_EIO, "cannot read back %s", tmp);
            fclose(fp);
        }
        unlink(tmp);
    }
    if (agree(mc, rc, "training")) {
        free(bytes);
        return 1;
    }
    COMM(mc, MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    if (mc->rank != 0) bytes = malloc(len ? len : 1);
    int have = bytes != NULL, all_have = 0;
    COMM(mc, MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (!all_have) {
        rc = have ? 0 : qx_error_set(QX_ENOMEM, "model of %llu bytes", (unsigned long long)len);
        agree(mc, rc ? rc : QX_ECANCELED, "receiving the model");
        free(bytes);
        return 1;
    }
    for (uint64_t off = 0; off < len; off += (uint64_t)1 << 30) {
        int piece = (int)(len - off < ((uint64_t)1 << 30) ? len - off : (uint64_t)1 << 30);
        COMM(mc, MPI_Bcast(bytes + off, piece, MPI_BYTE, 0, MPI_COMM_WORLD));
    }
    mc->bytes_moved += mc->rank == 0 ? (double)len * (mc->P - 1) : 0;
    int fd = memfd_create("qinx-model", MFD_CLOEXEC);
    rc = fd < 0 ? qx_error_set(QX_EIO, "memfd_create: %s", strerror(errno)) : 0;
    for (uint64_t off = 0; rc == 0 && off < len;) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = qx_error_set(QX_EIO, "writing the model to memory: %s", strerror(errno));
        else off += (uint64_t)w;
    }
    free(bytes);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (rc == 0) rc = qx_ivf_load(path, out);
    if (fd >= 0) close(fd);
    return agree(mc, rc, "loading the broadcast model");
}

/* After each chunk: rows done and failures summed over ranks. */
static int chunk_done(void *ctx, size_t done, int failed) {
    mpi_ctx *mc = ctx;
    uint64_t mine[2] = {done, (uint64_t)failed}, sum[2];
    COMM(mc, MPI_Allreduce(mine, sum, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
    mc->bytes_moved += 16;
    if (mc->rank == 0 && !sum[1]) cli_rows_progress_show(&mc->rp, (size_t)sum[0]);
    return sum[1] && !failed ? qx_error_set(QX_ECANCELED, "stopped: another rank failed") : 0;
}

/* "<dir>/<name>" of the out path: the directory and base name. */
static void split_path(const char *out, char *dir, size_t dcap, const char **base) {
    const char *slash = strrchr(out, '/');
    if (slash) snprintf(dir, dcap, "%.*s", (int)(slash - out) ? (int)(slash - out) : 1, out);
    else snprintf(dir, dcap, ".");
    *base = slash ? slash + 1 : out;
}

/* Remove OUT.<8 hex>.shard-*.tmp left by a job that died (every rank, in
 * its own view of the directory, before any new shard is written). */
static void remove_stale_temps(const char *out) {
    char dir[4096];
    const char *base;
    split_path(out, dir, sizeof dir, &base);
    DIR *dp = opendir(dir);
    size_t bl = strlen(base);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        const char *n = e->d_name;
        size_t nl = strlen(n);
        if (nl > bl + 10 + 7 + 4 && !strncmp(n, base, bl) && n[bl] == '.' && n[bl + 9] == '.' &&
            strspn(n + bl + 1, "0123456789abcdef") == 8 && !strncmp(n + bl + 10, "shard-", 6) &&
            !strcmp(n + nl - 4, ".tmp")) {
            char p[8192];
            snprintf(p, sizeof p, "%s/%s", dir, n);
            unlink(p);
        }
    }
    if (dp) closedir(dp);
}

static int run(mpi_ctx *mc, const cli_build_cfg *c) {
    double t0 = MPI_Wtime();
    cli_progress_init(&mc->prog, c->quiet || mc->rank != 0);
    const cli_progress *prog = &mc->prog;
    if (mc->rank == 0) cli_log(prog, "qinx build --mpi: %d ranks", mc->P);
    qx_vecs_file *f = NULL;
    int open_rc = qx_vecs_open(&f, c->base);
    int st = check_agreement(mc, c, f, open_rc);
    if (st) {
        qx_vecs_close(f);
        return st;
    }
    size_t n = qx_vecs_file_rows(f), d = qx_vecs_file_dim(f);
    size_t lo = n * (size_t)mc->rank / (size_t)mc->P, hi = n * (size_t)(mc->rank + 1) / (size_t)mc->P;
    remove_stale_temps(c->out);
    /* 1. the training set on rank 0 */
    qx_matrix train = {0};
    int whole = 0, rc = 0;
    char desc[4096 + 128] = "";
    if (c->train) {
        if (mc->rank == 0 && (rc = qx_vecs_read(c->train, 0, &train)) == 0 && train.d != d)
            rc = qx_error_set(QX_EDIM, "--train has dimension %zu, --base has %zu", train.d, d);
        snprintf(desc, sizeof desc, "--train %s: %zu vectors", c->train, train.n);
        st = agree(mc, rc, "reading --train");
    } else {
        st = gather_sample(mc, c, f, lo, hi, &train, &whole, desc, sizeof desc);
    }
    double t_sample = MPI_Wtime() - t0;
    if (st) {
        qx_vecs_close(f);
        return st;
    }
    /* 2. rank 0 trains; the model goes to every rank */
    qx_ivf *trained = NULL, *ivf = NULL;
    if (mc->rank == 0) {
        cli_log(prog, "qinx build: training sample: %s", desc);
        cli_log(prog, "qinx build: %zu base vectors, %zu training vectors, d=%zu, %zu bytes/vector; rank r encodes "
                "rows [n*r/%d, n*(r+1)/%d)", n, train.n, d, c->bytes, mc->P, mc->P);
        rc = cli_build_new_index(c, d, whole, &trained);
        if (rc == 0) {
            qx_ivf_set_progress(trained, cli_progress_fn, &mc->prog);
            rc = qx_ivf_train(trained, train.data, train.n);
            cli_progress_done(&mc->prog);
        }
    }
    qx_matrix_free(&train);
    st = share_model(mc, c, trained, rc, &ivf);
    qx_ivf_free(trained);
    double t_train = MPI_Wtime() - t0 - t_sample;
    if (st) {
        qx_vecs_close(f);
        return st;
    }
    /* 3. encode this rank's rows */
    double te = MPI_Wtime();
    size_t longest = 0; /* chunks of the longest span any rank reads */
    for (int r = 0; r < mc->P; r++) {
        size_t a0, a1;
        cli_encode_span(n * (size_t)r / (size_t)mc->P, n * (size_t)(r + 1) / (size_t)mc->P, n, &a0, &a1);
        if (a1 - a0 > longest) longest = a1 - a0;
    }
    cli_rows_progress_init(&mc->rp, prog, n);
    cli_row_locator *rl = NULL; /* the index's id map: freed after it */
    rc = cli_encode_rows(ivf, f, lo, hi, (longest + CLI_BUILD_CHUNK - 1) / CLI_BUILD_CHUNK, chunk_done, mc, &rl);
    if (rc == 0) rc = qx_vecs_file_unchanged(f);
    double t_encode = MPI_Wtime() - te;
    qx_vecs_close(f);
    if (agree(mc, rc, "encoding its rows")) {
        qx_ivf_free(ivf);
        cli_row_locator_free(rl);
        return 1;
    }
    /* 4. shards: temp files, then rename everywhere, then the manifest */
    unsigned tag = 0;
    if (mc->rank == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        tag = (unsigned)((uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 16);
    }
    COMM(mc, MPI_Bcast(&tag, 1, MPI_UNSIGNED, 0, MPI_COMM_WORLD));
    char final[4096 + 64], tmp[4096 + 80];
    snprintf(final, sizeof final, "%s.%08x.shard-%d-of-%d", c->out, tag, mc->rank, mc->P);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    uint64_t sz[3] = {0, 0, 0}; /* bytes, crc, rows */
    uint32_t crc = 0;
    rc = qx_ivf_save(ivf, tmp);
    if (rc == 0) rc = qx_file_crc32(tmp, &sz[0], &crc);
    sz[1] = crc;
    sz[2] = hi - lo;
    qx_ivf_free(ivf);
    cli_row_locator_free(rl);
    if (agree(mc, rc, "writing its shard")) {
        unlink(tmp);
        return 1;
    }
    rc = rename(tmp, final) ? qx_error_set(QX_EIO, "cannot rename %s: %s", tmp, strerror(errno)) : qx_fsync_dir(final);
    if (agree(mc, rc, "publishing its shard")) {
        unlink(tmp);
        unlink(final);
        return 1;
    }
    uint64_t *all = mc->rank == 0 ? malloc(sizeof(uint64_t) * 3 * (size_t)mc->P) : NULL;
    COMM(mc, MPI_Gather(sz, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, 0, MPI_COMM_WORLD));
    qx_manifest old = {0}, m = {0};
    int had_old = 0;
    if (mc->rank == 0) {
        had_old = qx_manifest_probe(c->out) && qx_manifest_read(c->out, &old) == 0;
        qx_vecs_file *f2 = NULL;
        rc = qx_vecs_open(&f2, c->base);
        m.d = d, m.nshards = (size_t)mc->P, m.rows = n, m.metric = c->metric, m.nlist = c->nlist;
        if (rc == 0) qx_vecs_file_identity(f2, &m.base_bytes, &m.base_mtime_ns);
        qx_vecs_close(f2);
        m.shards = calloc((size_t)mc->P, sizeof *m.shards);
        if (!m.shards && rc == 0) rc = qx_error_set(QX_ENOMEM, "manifest");
        /* nlist and code size as the shards hold them (nlist may be capped) */
        qx_ivf *probe = NULL;
        char p0[4096 + 64];
        snprintf(p0, sizeof p0, "%s.%08x.shard-0-of-%d", c->out, tag, mc->P);
        if (rc == 0 && (rc = qx_ivf_load(p0, &probe)) == 0) {
            qx_ivf_info info;
            qx_ivf_get_info(probe, &info);
            m.nlist = info.nlist, m.code_size = info.code_size;
        }
        qx_ivf_free(probe);
        const char *slash = strrchr(c->out, '/');
        const char *ob = slash ? slash + 1 : c->out;
        for (int r = 0; rc == 0 && r < mc->P; r++) {
            qx_shard_entry *e = &m.shards[r];
            e->row_begin = n * (size_t)r / (size_t)mc->P;
            e->row_end = n * (size_t)(r + 1) / (size_t)mc->P;
            e->bytes = all[3 * r], e->crc = (uint32_t)all[3 * r + 1];
            snprintf(e->uri, sizeof e->uri, "file:%s.%08x.shard-%d-of-%d", ob, tag, r, mc->P);
        }
        if (rc == 0) rc = qx_manifest_write(c->out, &m);
    }
    free(all);
    if (agree(mc, rc, "writing the manifest")) {
        unlink(final);
        qx_manifest_free(&old);
        free(m.shards);
        return 1;
    }
    /* the new manifest is in place: the old one's shards can go */
    for (size_t i = 0; mc->rank == 0 && had_old && i < old.nshards; i++) {
        char p[8192];
        if (qx_manifest_shard_path(c->out, &old.shards[i], p, sizeof p) == 0 && !strstr(p, final)) unlink(p);
    }
    qx_manifest_free(&old);
    free(m.shards);
    m.shards = NULL;
    double t_total = MPI_Wtime() - t0;
    /* 5. optional merge into one index at OUT (rank 0; the shards must be
     * visible to it, e.g. one machine or a shared filesystem) */
    if (c->merge) {
        qx_ivf *merged = NULL;
        double tm = MPI_Wtime();
        if (mc->rank == 0) {
            rc = qx_sharded_merge(c->out, &merged);
            if (rc == 0) rc = qx_ivf_save(merged, c->out);
            qx_ivf_free(merged);
        }
        if (agree(mc, rc, "merging the shards (the sharded index at --out is complete)")) return 1;
        unlink(final); /* OUT is now one index; the shards are no longer named by anything */
        if (mc->rank == 0) cli_log(prog, "qinx build --mpi: merged into one index %s (%.1fs)", c->out, MPI_Wtime() - tm);
        t_total = MPI_Wtime() - t0;
    }
    /* 6. the figures: time in MPI calls per rank, bytes moved */
    double mine[5] = {mc->t_comm, t_encode, mc->bytes_moved, mc->t_wait, mc->t_wait_cpu}, mx[5], sum[5];
    MPI_Reduce(mine, mx, 5, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(mine, sum, 5, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (mc->rank == 0)
        cli_log(prog,
                "qinx build --mpi: wrote %s: %zu vectors in %d shards; sample %.2fs, train+broadcast %.2fs, "
                "encode %.2fs (slowest rank %.2fs), total %.2fs; communication (MPI transfers): mean %.3fs, "
                "max %.3fs per rank (%.2f%% of the total), %.1f MB moved; waiting for other ranks: mean %.2fs "
                "(CPU used while waiting: mean %.3fs)",
                c->out, n, mc->P, t_sample, t_train, t_encode, mx[1], t_total, sum[0] / mc->P, mx[0],
                100.0 * (sum[0] / mc->P) / t_total, sum[2] / 1e6, sum[3] / mc->P, sum[4] / mc->P);
    return 0;
}

int cli_build_mpi(const cli_build_cfg *c) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "qinx build --mpi: MPI_Init failed\n");
        return 1;
    }
    mpi_ctx mc;
    memset(&mc, 0, sizeof mc);
    MPI_Comm_rank(MPI_COMM_WORLD, &mc.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mc.P);
    int st = run(&mc, c);
    MPI_Finalize();
    return st;
}
