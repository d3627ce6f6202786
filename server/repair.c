/* server/repair.c — quarantine of non-finite vectors written by older servers (see repair.h).
 * A NaN row cannot be searched, rebuilt or returned, so the choice is between refusing to open
 * the collection and moving the row aside; the owner's choice is the second, with a trace: the
 * quarantine file keeps the id, where the row came from and its log position, and the point is
 * gone from the collection (a later upsert of the same id stores it again). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qinx/alloc.h"
#include "qinx/error.h"
#include "repair.h"
#include "srv.h"

static int row_finite(const float *x, size_t d) {
    for (size_t j = 0; j < d; j++)
        if (!isfinite(x[j])) return 0;
    return 1;
}

static void quarantine(FILE *f, const qxs_pid *id, const char *source, uint64_t lsn) {
    char b[QXS_PID_STRLEN];
    const char *q = id->kind == QXS_PID_UUID ? "\"" : "";
    fprintf(f, "{\"id\":%s%s%s,\"source\":\"%s\",\"lsn\":%llu,\"reason\":\"non-finite vector\"}\n", q,
            qxs_pid_format(id, b), q, source, (unsigned long long)lsn);
}

int qxs_repair_partition(const char *dir, const char *name, const char *source, uint64_t lsn, size_t d,
                         qxs_pid *ids, float *x, qxs_bytes *p, size_t n, size_t *finite) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (row_finite(x + i * d, d)) k++;
    *finite = k;
    if (k == n) return 0;
    /* stable partition; the bad ids are collected aside, then put in the tail */
    qxs_pid *bad = qx_malloc((n - k) * sizeof *bad);
    if (!bad) return qx_error_set(QX_ENOMEM, "quarantine of %zu points", n - k);
    size_t w = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (!row_finite(x + i * d, d)) {
            bad[nb++] = ids[i];
            continue;
        }
        if (w != i) {
            memmove(x + w * d, x + i * d, d * sizeof *x);
            if (p) p[w] = p[i];
            ids[w] = ids[i];
        }
        w++;
    }
    qxs_pid *tail = ids + k;
    memcpy(tail, bad, nb * sizeof *bad);
    qx_free(bad);
    qxs_pid bad_first = tail[0];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, QXS_QUARANTINE);
    FILE *f = fopen(path, "a");
    if (f) {
        for (size_t i = 0; i < nb; i++) quarantine(f, &tail[i], source, lsn);
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            qxs_log(QXS_LOG_ERROR, "collection %s: could not sync %s", name, path);
        fclose(f);
    } else {
        qxs_log(QXS_LOG_ERROR, "collection %s: could not open %s to record quarantined points", name, path);
    }
    char b[QXS_PID_STRLEN];
    qxs_log(QXS_LOG_WARN,
            "collection %s: %zu point(s) with a non-finite vector from %s (lsn %llu, first id %s) quarantined in %s "
            "(written by a server before the Cosine norm floor; they cannot be searched)",
            name, nb, source, (unsigned long long)lsn, qxs_pid_format(&bad_first, b), path);
    return 0;
}
