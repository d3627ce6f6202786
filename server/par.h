/* server/par.h — a few threads for start-up work (internal to the server).
 *
 * Restart checks and loads ~50 bytes a point (segment metadata, codes): on
 * a 2-core machine that is twice as fast on both cores. Only for work whose
 * pieces are independent; nothing here is a pool (threads live for one call).
 */
#ifndef QXS_PAR_H
#define QXS_PAR_H

#include <stddef.h>
#include <stdint.h>

/* Threads start-up work may use: online CPUs, at most QXS_PAR_MAX; the
 * QX_START_THREADS environment variable overrides (1 = serial). */
#define QXS_PAR_MAX 8
int qxs_par_threads(void);

/* Run fn(ctx, t, nt) for t = 0 .. nt-1, each on its own thread (t = 0 on
 * the caller's), and wait for all. If a thread cannot be created its share
 * runs on the caller's thread after the others. */
typedef void (*qxs_par_fn)(void *ctx, int t, int nt);
void qxs_par_run(int nt, qxs_par_fn fn, void *ctx);

/* qx_crc32(crc, data, len) computed in qxs_par_threads() pieces combined
 * with qx_crc32_combine (serial below a few MiB). Same value. */
uint32_t qxs_crc32_par(uint32_t crc, const void *data, size_t len);

#endif
