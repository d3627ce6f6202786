/* tools/cli_info.c — `qinx info`: what an index file holds. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qinx/core.h"
#include "qinx/qinco.h"

/* The QINCo network of an index (empty strings for an RQ index): one text
 * line, and a JSON member with its leading comma. */
static void qinco_desc(const qx_ivf *ivf, char *txt, size_t ntxt, char *js, size_t njs) {
    const qx_quantizer *q = qx_ivf_quantizer(ivf);
    qx_qinco_opts o;
    qx_qinco_stats st;
    txt[0] = js[0] = 0;
    if (!q || qx_quantizer_kind(q) != QX_QUANT_QINCO || qx_qinco_get_opts(q, &o) ||
        qx_qinco_get_stats(q, &st))
        return;
    snprintf(txt, ntxt, "network      L=%d residual blocks, hidden size h=%d; encoder A=%d beam=%d; "
             "trained %zu epochs, best epoch %zu\n", o.L, o.h, o.A, o.beam, st.epochs, st.best_epoch);
    snprintf(js, njs, ",\"qinco\":{\"L\":%d,\"h\":%d,\"A\":%d,\"beam\":%d,\"epochs\":%zu,\"best_epoch\":%zu}",
             o.L, o.h, o.A, o.beam, st.epochs, st.best_epoch);
}

int qx_cli_info(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    static const struct option opts[] = {
        {"index", 1, 0, 'i'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'i') path = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'h') {
            printf("usage: qinx info --index INDEX [--json]\n");
            return 0;
        } else return 2;
    }
    if (!path || optind < argc) {
        fprintf(stderr, "usage: qinx info --index INDEX [--json]\n");
        return 2;
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
    char net[256], net_js[256];
    qinco_desc(ivf, net, sizeof net, net_js, sizeof net_js);
    if (json) {
        fputs("{\"index\":", stdout);
        qx_json_fputs(stdout, path);
        printf(",\"dim\":%zu,\"metric\":\"%s\",\"quantizer\":\"%s\",\"steps\":%zu,"
               "\"code_size\":%zu,\"nlist\":%zu,\"ntotal\":%zu,\"list_min\":%zu,\"list_max\":%zu,"
               "\"memory_bytes\":%zu,\"file_bytes\":%lld%s}\n",
               in.d, metric, kind, in.M, in.code_size, in.nlist, in.ntotal, in.list_min,
               in.list_max, in.bytes, fsize, net_js);
    } else {
        printf("index        %s\n", path);
        printf("dimension    %zu\nmetric       %s\nquantizer    %s, %zu steps x 256 codewords\n", in.d,
               metric, kind, in.M);
        fputs(net, stdout);
        printf("code size    %zu bytes/vector (+8-byte id)\n", in.code_size);
        printf("lists        %zu (sizes %zu..%zu)\nvectors      %zu\n", in.nlist, in.list_min,
               in.list_max, in.ntotal);
        printf("memory       %.1f MiB\nfile         %.1f MiB\n", in.bytes / 1048576.0, fsize / 1048576.0);
    }
    qx_ivf_free(ivf);
    return 0;
}
