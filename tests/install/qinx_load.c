/* tests/install/qinx_load.c — the smallest user of an installed qinx: it only
 * loads an index file and searches it, so a static link pulls in nothing but
 * what qx_ivf_load reaches. This is the program that failed with "kind qinco
 * not built in" while QINCo was reached through a weak symbol (issue 17).
 * Usage: qinx_load INDEX DIM. Exit 0 when the index loads and answers. */
#include <stdio.h>
#include <stdlib.h>

#include <qinx/qinx.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    qx_ivf *ivf = NULL;
    int rc = qx_ivf_load(argv[1], &ivf);
    if (rc) {
        fprintf(stderr, "qinx_load: %s: %s\n", argv[1], qx_last_error());
        return 1;
    }
    size_t d = (size_t)atoi(argv[2]);
    float *q = calloc(d, sizeof(float));
    float dist[5];
    int64_t ids[5];
    rc = qx_ivf_search(ivf, NULL, q, 1, 5, NULL, dist, ids);
    printf("qinx_load: %s loaded and searched (rc %d, first id %lld)\n", argv[1], rc, (long long)ids[0]);
    free(q);
    qx_ivf_free(ivf);
    return rc != 0 || ids[0] < 0;
}
