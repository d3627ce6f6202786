/* server/repair.h — points stored by servers before the Cosine norm floor (issue 19): a vector
 * whose norm underflowed was normalised to NaN, acknowledged and kept. Such rows never enter
 * the new storage: on upgrade and on log replay they are moved aside into the collection's
 * quarantine file (one JSON line each) and reported in the log. */
#ifndef QXS_REPAIR_H
#define QXS_REPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "pointid.h"
#include "store.h"

#define QXS_QUARANTINE "quarantine.jsonl"

/* Partitions n rows (ids, x: n × d floats, p: payloads or NULL) so that the k rows whose vectors
 * are all finite come first, in their order, and sets *finite = k. The ids of the others are left in
 * ids[k..n) (their vectors and payloads are not kept) and each is appended to
 * dir/quarantine.jsonl as {"id", "source", "lsn", "reason"}, fsync'd; `name` and `source`
 * (e.g. "snapshot.bin", "wal.log") go into the warning logged when k < n. 0, or QX_ENOMEM with
 * nothing moved. */
int qxs_repair_partition(const char *dir, const char *name, const char *source, uint64_t lsn, size_t d,
                         qxs_pid *ids, float *x, qxs_bytes *p, size_t n, size_t *finite);

#endif
