/* qinx/idmap.h — the core's hash map from a 64-bit id to a 64-bit value: the
 * IVF index's id -> (list, offset) map, public for programs that keep their
 * own id tables (the server's point store). Open addressing with linear
 * probing and backward-shift deletion (no tombstones), load under 1/2.
 * Not thread-safe: serialize writers against readers. Calls return 0 or a
 * negative QX_E… code unless said otherwise; the map comes first.
 * Conventions: qinx/defs.h (0 or a negative QX_E… code; a _new call's object
 * first, other calls' outputs last).
 */
#ifndef QINX_IDMAP_H
#define QINX_IDMAP_H

#include "qinx/defs.h"

#include <stddef.h>
#include <stdint.h>

QX_BEGIN_DECLS

/* Zero-initialise ({0}) before use; the fields are the map's own. */
typedef struct qx_idmap {
    int64_t *keys;
    uint64_t *vals;
    uint8_t *used;
    size_t cap, count; /* cap is a power of two or 0 */
} qx_idmap;

/* Room for n keys without rehashing; QX_ENOMEM. */
int qx_idmap_reserve(qx_idmap *m, size_t n);
/* Insert or overwrite; QX_ENOMEM. */
int qx_idmap_put(qx_idmap *m, int64_t key, uint64_t val);
/* 1 and *val if key is present, else 0. */
int qx_idmap_get(const qx_idmap *m, int64_t key, uint64_t *val);
/* 1 if key was removed, 0 if absent. */
int qx_idmap_del(qx_idmap *m, int64_t key);
/* Free the tables (the map is then empty, reusable). */
void qx_idmap_free(qx_idmap *m);

QX_END_DECLS
#endif
