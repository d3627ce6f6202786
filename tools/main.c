/* tools/main.c — the `qinx` command: one program, one subcommand per job.
 * `qinx bench` runs the separate qinx-bench program that sits beside this
 * one (built and installed with it), so the benchmark's code stays out of
 * the production binary. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
/* Server and bench are optional parts of the build (their folders may be
 * absent in a trimmed checkout). */
#if defined(QX_HAVE_SERVER) && __has_include("serve.h")
#include "serve.h"
#else
#undef QX_HAVE_SERVER
#endif

/* exec the qinx-bench next to this executable; returns only on failure */
static int run_bench(char **argv) {
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "qinx bench: cannot locate this program: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, sizeof path, "%s/qinx-bench", self);
    argv[0] = path;
    execv(path, argv);
    fprintf(stderr, "qinx bench: cannot run %s: %s (it is built and installed with qinx)\n", path,
            strerror(errno));
    return 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "qinx %s — vector search over residual / QINCo-style codes\n\n"
            "usage: qinx <command> [options]   (qinx <command> --help for its options)\n\n"
            "  build    train and write an IVF index from a vector file\n"
            "  search   query an index file; recall and QPS against ground truth\n"
            "  info     describe an index file\n"
            "  merge    merge the shards of a distributed build into one index\n"
            "  verify   DERP report of an index: codebook health, drift, recall\n"
            "  synth    write a generated dataset (base, queries, exact ground truth)\n"
#ifdef QX_HAVE_SERVER
            "  serve    run the HTTP server\n"
#endif
            "  bench    compare qinx and FAISS quantizers (runs qinx-bench)\n"
            "  version  print the version\n",
            QINX_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--, argv++;
    if (!strcmp(cmd, "build")) return qx_cli_build(argc, argv);
    if (!strcmp(cmd, "search")) return qx_cli_search(argc, argv);
    if (!strcmp(cmd, "info")) return qx_cli_info(argc, argv);
    if (!strcmp(cmd, "verify")) return qx_cli_verify(argc, argv);
    if (!strcmp(cmd, "synth")) return qx_cli_synth(argc, argv);
    if (!strcmp(cmd, "merge")) return qx_cli_merge(argc, argv);
#ifdef QX_HAVE_SERVER
    if (!strcmp(cmd, "serve")) return qx_serve_main(argc, argv);
#endif
    if (!strcmp(cmd, "bench")) return run_bench(argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("qinx %s (SIMD: %s)\n", QINX_VERSION, qx_simd_name(qx_simd_active()));
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "qinx: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
