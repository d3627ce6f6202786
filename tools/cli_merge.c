/* tools/cli_merge.c — `qinx merge`: the shards a manifest names, verified
 * (size, CRC, shared model) and merged into one index file, written
 * atomically. The shards and the manifest are left as they are. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: qinx merge --index MANIFEST --out INDEX [--quiet]\n"
               "  --index MANIFEST  the manifest of a sharded index (qinx-mpi build --mpi)\n"
               "  --out INDEX       the one index file to write (atomically)\n");
}

int qx_cli_merge(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int quiet = 0, c;
    static const struct option opts[] = {
        {"index", 1, 0, 'i'}, {"out", 1, 0, 'o'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!in || !out || optind < argc) {
        fprintf(stderr, "qinx merge: --index and --out are required\n");
        usage(stderr);
        return 2;
    }
    double t0 = cli_now();
    qx_ivf *ivf = NULL;
    int rc = qx_sharded_merge(in, &ivf);
    if (rc == 0) rc = qx_ivf_save(ivf, out);
    if (rc == 0 && !quiet) {
        qx_ivf_info info;
        qx_ivf_get_info(ivf, &info);
        fprintf(stderr, "qinx merge: wrote %s: %zu vectors, nlist=%zu, %zu bytes/vector (%.1fs)\n", out,
                info.ntotal, info.nlist, info.code_size, cli_now() - t0);
    }
    qx_ivf_free(ivf);
    return rc ? cli_fail("merge", rc) : 0;
}
