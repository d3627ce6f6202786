/* tools/util.c — option parsing, error reporting and recall metrics shared by
 * the subcommands. Recall definitions follow the ANN-benchmarks / FAISS
 * conventions: R@R is the fraction of queries whose true nearest neighbour is
 * among the first R results; 10-recall@10 the mean overlap of the first 10
 * results with the true 10 nearest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "qinx: %s expects a whole number in %zu..%zu, got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int cli_fail(const char *cmd, int rc) {
    fprintf(stderr, "qinx %s: %s (%s)\n", cmd, qx_last_error(), qx_strerror(rc));
    return 1;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
