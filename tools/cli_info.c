/* tools/cli_info.c — `qinx info`: what an index file holds, or what a shard
 * manifest names (each shard's rows, size and CRC, checked against its file). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qinx/fastscan.h"
#include "qinx/core.h"
#include "qinx/qinco.h"

/* The QINCo network of an index (empty strings for an RQ index): one text
 * line, and a JSON member with its leading comma. */
/* The split of a fast-scan code, for info (empty for other kinds). */
static void fs_desc(const qx_ivf *ivf, char *txt, size_t ntxt, char *js, size_t njs) {
    const qx_quantizer *q = qx_ivf_quantizer(ivf);
    txt[0] = js[0] = 0;
    if (!q || qx_quantizer_kind(q) != QX_QUANT_FASTSCAN) return;
    const char *shape = qx_fs_product_rows(q) ? "product" : "residual";
    snprintf(txt, ntxt, "fast-scan    %zu x 4-bit steps (%s shape, scanned in registers) + %zu x 8-bit steps\n",
             qx_fs_steps4(q), shape, qx_fs_steps8(q));
    snprintf(js, njs, ",\"fastscan\":{\"steps4\":%zu,\"steps8\":%zu,\"shape\":\"%s\"}", qx_fs_steps4(q),
             qx_fs_steps8(q), shape);
}

static void qinco_desc(const qx_ivf *ivf, char *txt, size_t ntxt, char *js, size_t njs) {
    const qx_quantizer *q = qx_ivf_quantizer(ivf);
    qx_qinco_opts o;
    qx_qinco_stats st;
    txt[0] = js[0] = 0;
    if (!q || qx_quantizer_kind(q) != QX_QUANT_QINCO || qx_qinco_get_opts(q, &o) ||
        qx_qinco_get_stats(q, &st))
        return;
    int ctx = qx_quantizer_uses_context(q);
    int n = snprintf(txt, ntxt, "network      L=%d residual blocks, hidden size h=%d; encoder A=%d "
                     "beam=%d; trained %zu epochs, best epoch %zu%s\n", o.L, o.h, o.A, o.beam,
                     st.epochs, st.best_epoch, ctx ? "; conditioned on the list centroid" : "");
    if (n > 0 && (size_t)n < ntxt && st.checked)
        n += snprintf(txt + n, ntxt - (size_t)n,
                      "check        %s: held-out MSE %.6g vs RQ %.6g, recall@1 %.4f vs RQ %.4f "
                      "(%zu held-out queries, %zu training vectors)\n",
                      st.fallback ? "FELL BACK TO THE RQ (the network did not beat it; the codes "
                                    "are the RQ's)" : "network kept",
                      st.check_mse_qinco, st.check_mse_rq, st.check_recall_qinco,
                      st.check_recall_rq, st.check_nq, st.check_nbase);
    if (n > 0 && (size_t)n < ntxt && st.sgemm_gflops > 0)
        snprintf(txt + n, ntxt - (size_t)n,
                 "training     %.1f GFLOP/s (%.0f%% of this machine's sgemm rate %.1f GFLOP/s "
                 "measured in the same run), %.2f cores\n", st.train_gflops,
                 100 * st.train_gflops / st.sgemm_gflops, st.sgemm_gflops, st.cores_used);
    snprintf(js, njs, ",\"qinco\":{\"L\":%d,\"h\":%d,\"A\":%d,\"beam\":%d,\"context\":%s,\"epochs\":%zu,"
             "\"best_epoch\":%zu,\"checked\":%s,\"fallback\":%s,\"check\":{\"queries\":%zu,"
             "\"base\":%zu,\"mse_rq\":%.9g,\"mse_qinco\":%.9g,\"recall1_rq\":%.6g,"
             "\"recall1_qinco\":%.6g},\"train_gflops\":%.6g,\"sgemm_gflops\":%.6g,"
             "\"cores_used\":%.4g}",
             o.L, o.h, o.A, o.beam, ctx ? "true" : "false", st.epochs, st.best_epoch, st.checked ? "true" : "false",
             st.fallback ? "true" : "false", st.check_nq, st.check_nbase, st.check_mse_rq,
             st.check_mse_qinco, st.check_recall_rq, st.check_recall_qinco, st.train_gflops,
             st.sgemm_gflops, st.cores_used);
}

/* Reconstruction MSE of the index's codes over rows [first, end) of a vector
 * file: each vector is assigned to its list, its residual encoded and decoded
 * (qx_quantizer_mse), ||x - x̂||² summed over dimensions and averaged. Read
 * and encoded in chunks, so any file size works. */
#define QX__MSE_CHUNK 65536
static int index_mse(const qx_ivf *ivf, const char *file, size_t first, size_t end, double *mse,
                     size_t *nout) {
    qx_vecs_file *f = NULL;
    int rc = qx_vecs_open(&f, file);
    if (rc) return rc;
    size_t rows = qx_vecs_file_rows(f), d = qx_vecs_file_dim(f);
    qx_ivf_info in;
    qx_ivf_get_info(ivf, &in);
    if (end == 0 || end > rows) end = rows;
    if (d != in.d || first >= end) {
        if (d != in.d) fprintf(stderr, "qinx info: --mse %s has dimension %zu, the index %zu\n", file, d, in.d);
        else fprintf(stderr, "qinx info: --rows starts at %zu, but %s has %zu rows\n", first, file, rows);
        qx_vecs_close(f);
        return 1; /* reported (qx error codes are negative) */
    }
    size_t cap = QX__MSE_CHUNK;
    float *x = rc ? NULL : malloc(sizeof(float) * cap * d);
    float *res = rc ? NULL : malloc(sizeof(float) * cap * d);
    uint32_t *list = rc ? NULL : malloc(sizeof(uint32_t) * cap);
    if (rc == 0 && (!x || !res || !list)) rc = QX_ENOMEM;
    double sum = 0;
    for (size_t at = first; rc == 0 && at < end; at += cap) {
        size_t m = end - at < cap ? end - at : cap;
        double part = 0;
        rc = qx_vecs_read_rows(f, at, m, x);
        if (rc == 0) rc = qx_ivf_residuals(ivf, x, m, list, res);
        if (rc == 0) rc = qx_quantizer_mse(qx_ivf_quantizer(ivf), res, m, 0, &part);
        sum += part * (double)m;
    }
    if (rc == 0) {
        *mse = sum / (double)(end - first);
        *nout = end - first;
    }
    free(x);
    free(res);
    free(list);
    qx_vecs_close(f);
    return rc;
}

/* "A:B", "A:" or "A" (from row A to the end; B excluded). */
static int parse_rows(const char *s, size_t *first, size_t *end) {
    char a[32];
    const char *colon = strchr(s, ':');
    size_t la = colon ? (size_t)(colon - s) : strlen(s);
    if (la == 0 || la >= sizeof a) return 1;
    memcpy(a, s, la);
    a[la] = 0;
    *end = 0;
    if (cli_parse_size("--rows", a, 0, SIZE_MAX, first)) return 1;
    if (colon && colon[1] && cli_parse_size("--rows", colon + 1, 1, SIZE_MAX, end)) return 1;
    if (*end && *end <= *first) {
        fprintf(stderr, "qinx info: --rows %s is empty\n", s);
        return 1;
    }
    return 0;
}

/* A manifest: its header and each shard, with its file checked (size, CRC). */
static int manifest_info(const char *path, int json) {
    qx_manifest m;
    int rc = qx_manifest_read(path, &m);
    if (rc) return cli_fail("info", rc);
    int bad = 0;
    if (json) {
        fputs("{\"index\":", stdout);
        qx_json_fputs(stdout, path);
        printf(",\"manifest\":true,\"dim\":%zu,\"metric\":\"%s\",\"code_size\":%zu,\"nlist\":%zu,"
               "\"ntotal\":%llu,\"shards\":[", m.d, m.metric == QX_METRIC_L2 ? "l2" : "ip", m.code_size, m.nlist,
               (unsigned long long)m.rows);
    } else {
        printf("index        %s (shard manifest)\ndimension    %zu\nmetric       %s\ncode size    %zu "
               "bytes/vector (+8-byte id)\nlists        %zu\nvectors      %llu\nshards       %zu\n",
               path, m.d, m.metric == QX_METRIC_L2 ? "l2" : "ip", m.code_size, m.nlist,
               (unsigned long long)m.rows, m.nshards);
    }
    for (size_t i = 0; i < m.nshards; i++) {
        const qx_shard_entry *e = &m.shards[i];
        char file[QX_PATH_CAP + 64];
        uint64_t bytes = 0;
        uint32_t crc = 0;
        const char *state = "ok";
        if (qx_manifest_shard_path(path, e, file, sizeof file)) state = "unreadable URI";
        else if (qx_file_crc32(file, &bytes, &crc)) state = "MISSING";
        else if (bytes != e->bytes || crc != e->crc) state = "CORRUPT (size or CRC differs)";
        bad |= strcmp(state, "ok") != 0;
        if (json) {
            printf("%s{\"rows\":[%llu,%llu],\"bytes\":%llu,\"crc\":\"%08x\",\"state\":\"%s\",\"uri\":", i ? "," : "",
                   (unsigned long long)e->row_begin, (unsigned long long)e->row_end,
                   (unsigned long long)e->bytes, (unsigned)e->crc, state);
            qx_json_fputs(stdout, e->uri);
            fputc('}', stdout);
        } else {
            printf("  shard %zu   rows %llu..%llu  %.1f MiB  crc %08x  %s  %s\n", i, (unsigned long long)e->row_begin,
                   (unsigned long long)e->row_end, e->bytes / 1048576.0, (unsigned)e->crc, e->uri, state);
        }
    }
    if (json) printf("]}\n");
    qx_manifest_free(&m);
    return bad ? 1 : 0;
}

int qx_cli_info(int argc, char **argv) {
    const char *path = NULL, *mse_file = NULL;
    int json = 0;
    size_t first = 0, end = 0;
    static const struct option opts[] = {{"index", 1, 0, 'i'}, {"json", 0, 0, 'j'},
                                         {"mse", 1, 0, 'm'},   {"rows", 1, 0, 'r'},
                                         {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    static const char usage[] =
        "usage: qinx info --index INDEX [--json] [--mse FILE [--rows A:B]]\n"
        "  --mse FILE   also the reconstruction MSE of the index's codes over FILE's vectors\n"
        "               (e.g. base vectors the quantizer was not trained on)\n"
        "  --rows A:B   only rows A..B-1 of FILE (A: = from A to the end)\n";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'i') path = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'm') mse_file = optarg;
        else if (c == 'r') {
            if (parse_rows(optarg, &first, &end)) return 2;
        } else if (c == 'h') {
            fputs(usage, stdout);
            return 0;
        } else return 2;
    }
    if (!path || optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (qx_manifest_probe(path)) {
        if (mse_file) {
            fprintf(stderr, "qinx info: --mse needs an index file, not a shard manifest\n");
            return 2;
        }
        return manifest_info(path, json);
    }
    qx_ivf *ivf = NULL;
    int rc = qx_ivf_load(path, &ivf);
    if (rc) return cli_fail("info", rc);
    qx_ivf_info in;
    qx_ivf_get_info(ivf, &in);
    struct stat st;
    long long fsize = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    const char *metric = in.metric == QX_METRIC_L2 ? "l2" : "ip";
    const char *kind = qx_quantizer_kind_name(in.quant_kind);
    char net[1024], net_js[1024], fs[256], fs_js[256];
    qinco_desc(ivf, net, sizeof net, net_js, sizeof net_js);
    fs_desc(ivf, fs, sizeof fs, fs_js, sizeof fs_js);
    char mse_txt[QX_PATH_CAP + 128] = "", mse_js[128] = "";
    if (mse_file) {
        double mse = 0;
        size_t n = 0;
        if ((rc = index_mse(ivf, mse_file, first, end, &mse, &n)) != 0) {
            qx_ivf_free(ivf);
            return rc > 0 ? 1 : cli_fail("info", rc);
        }
        snprintf(mse_txt, sizeof mse_txt, "MSE          %.6g over %zu vectors (rows %zu..%zu of %s)\n",
                 mse, n, first, first + n - 1, mse_file);
        snprintf(mse_js, sizeof mse_js, ",\"mse\":{\"value\":%.9g,\"vectors\":%zu,\"first_row\":%zu}",
                 mse, n, first);
    }
    if (json) {
        fputs("{\"index\":", stdout);
        qx_json_fputs(stdout, path);
        printf(",\"dim\":%zu,\"metric\":\"%s\",\"quantizer\":\"%s\",\"steps\":%zu,"
               "\"code_size\":%zu,\"nlist\":%zu,\"ntotal\":%zu,\"list_min\":%zu,\"list_max\":%zu,"
               "\"memory_bytes\":%zu,\"file_bytes\":%lld%s%s%s}\n",
               in.d, metric, kind, in.M, in.code_size, in.nlist, in.ntotal, in.list_min,
               in.list_max, in.bytes, fsize, net_js, fs_js, mse_js);
    } else {
        printf("index        %s\n", path);
        printf("dimension    %zu\nmetric       %s\nquantizer    %s, %zu steps x 256 codewords\n", in.d,
               metric, kind, in.M);
        fputs(net, stdout);
        fputs(fs, stdout);
        printf("code size    %zu bytes/vector (+8-byte id)\n", in.code_size);
        printf("lists        %zu (sizes %zu..%zu)\nvectors      %zu\n", in.nlist, in.list_min,
               in.list_max, in.ntotal);
        printf("memory       %.1f MiB\nfile         %.1f MiB\n", in.bytes / 1048576.0, fsize / 1048576.0);
        fputs(mse_txt, stdout);
    }
    qx_ivf_free(ivf);
    return 0;
}
