/* server/par.c — start-up work on several threads (par.h).
 *
 * Decisions:
 * 1. Plain pthreads created per call: start-up runs a handful of these
 *    calls, each over hundreds of megabytes, so thread creation is noise and
 *    a pool would outlive its use.
 * 2. A long CRC is cut into one piece per thread; the pieces' CRCs are
 *    combined in order (qx_crc32_combine), so files keep one checksum over a
 *    section and their format does not depend on how they are checked.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "qinx/core.h"
#include "par.h"

#ifndef CRC_PAR_MIN /* the unit tests make it small */
#define CRC_PAR_MIN ((size_t)4 << 20) /* below this a second thread does not pay */
#endif

int qxs_par_threads(void) {
    const char *e = getenv("QX_START_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > QXS_PAR_MAX) n = QXS_PAR_MAX;
    return (int)n;
}

typedef struct par_arg {
    qxs_par_fn fn;
    void *ctx;
    int t, nt;
} par_arg;

static void *par_main(void *p) {
    par_arg *a = p;
    a->fn(a->ctx, a->t, a->nt);
    return NULL;
}

void qxs_par_run(int nt, qxs_par_fn fn, void *ctx) {
    if (nt < 1) nt = 1;
    if (nt > QXS_PAR_MAX) nt = QXS_PAR_MAX;
    pthread_t th[QXS_PAR_MAX];
    par_arg arg[QXS_PAR_MAX];
    int started[QXS_PAR_MAX] = {0};
    for (int t = 1; t < nt; t++) {
        arg[t] = (par_arg){fn, ctx, t, nt};
        started[t] = pthread_create(&th[t], NULL, par_main, &arg[t]) == 0;
    }
    fn(ctx, 0, nt);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn(ctx, t, nt);
    }
}

typedef struct crc_job {
    const uint8_t *p;
    size_t len;
    uint32_t crc[QXS_PAR_MAX];
    size_t plen[QXS_PAR_MAX];
} crc_job;

static void crc_piece(void *ctx, int t, int nt) {
    crc_job *j = ctx;
    size_t per = j->len / (size_t)nt, a = per * (size_t)t, b = t == nt - 1 ? j->len : a + per;
    j->crc[t] = qx_crc32(0, j->p + a, b - a);
    j->plen[t] = b - a;
}

uint32_t qxs_crc32_par(uint32_t crc, const void *data, size_t len) {
    int nt = qxs_par_threads();
    if (nt == 1 || len < CRC_PAR_MIN) return qx_crc32(crc, data, len);
    crc_job j = {.p = data, .len = len};
    qxs_par_run(nt, crc_piece, &j);
    for (int t = 0; t < nt; t++) crc = qx_crc32_combine(crc, j.crc[t], j.plen[t]);
    return crc;
}
